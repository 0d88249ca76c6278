"""Crash recovery: ``clearinghouse replay`` killed with SIGKILL at random moments, many times.

A deterministic log of about 400 blocks (deposits, transfers, withdrawals,
makers quoting, takers crossing, cancels, oracle moves, funding hours) is
replayed into one LMDB directory by ``python -m clearinghouse.tools.cli replay LOG
--db DIR`` in a child process that is SIGKILLed at seeded random moments
(20 kills by default, 100 with ``--soak``). After every kill the directory
opens (the stored root matches the stored tree), holds exactly some block
``h`` of the log (its root is header ``h``'s state root, its header hash is
block ``h``'s) and satisfies every protocol §1.1 invariant; a directory that
reached the end is started afresh so the kills keep landing mid-replay.
After the last kill a replay completes, its root equals an uninterrupted
replay's, and ``clearinghouse audit --db DIR`` exits 0.

A torn log tail (half a frame appended, as a producer killed mid-write
leaves it) makes ``replay`` and ``verify`` fail with ``LOG_TRUNCATED`` and
exit 1: the whole blocks before it are applied, the tail is never taken.

(tests/test_transition_atomicity.py has a smaller SIGKILL test of its own.)
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import soak_enabled, subprocess_env

from clearinghouse.chain.engine import iter_log
from clearinghouse.chain.producer import Producer
from clearinghouse.spec.events import OrderStatus
from clearinghouse.tools.demo import USDC, demo_genesis
from clearinghouse.tools.invariants import check_all
from state import LmdbStore
from tx import actions as A
from tx.encoding import encode, header_hash
from tx.logfile import FRAME_BLOCK, LogWriter, encode_frame
from tx.messages import Genesis

BLOCKS = 400
KILLS = 20
SOAK_KILLS = 100
TRADERS = [f"trader-{i}" for i in range(8)]
MAKERS = ["maker-a", "maker-b"]
ORACLES = ["oracle-1", "oracle-2", "oracle-3"]

RESULTS: dict[str, Any] = {}


def five_sig(p: int) -> int:
    q = 10 ** max(0, len(str(p)) - 5)
    return max(1, p // q * q)


def build_log(path: Path, blocks: int = BLOCKS, seed: int = 2026) -> Producer:
    """A deterministic chain of ``blocks`` blocks mixing collateral and trading."""
    rng = random.Random(seed)
    p = Producer(demo_genesis(), path, overwrite=True)
    w = {n: p.wallet(n) for n in TRADERS + MAKERS + ORACLES + ["bridge"]}
    prices = {0: 90_000_000, 1: 32_000_000}
    open_orders: dict[int, tuple[str, int]] = {}
    names = {w[n].address: n for n in w}
    ref = 0

    def t() -> int:
        return p.time_ms + 1000

    def oracle() -> list[bytes]:
        for m in prices:
            prices[m] = max(1_000_000, prices[m] * (1000 + rng.randint(-8, 8)) // 1000)
        update = A.OracleUpdate(
            prices=[A.OraclePrice(market=m, oracle_price=px, external_price=px) for m, px in sorted(prices.items())]
        )
        return [w[o].sign(update, t()) for o in ORACLES]

    first = [
        w["bridge"].sign(A.Deposit(to=w[n].address, amount=(5_000_000 if n in MAKERS else 50_000) * USDC, ref=i), t())
        for i, n in enumerate(MAKERS + TRADERS)
    ]
    p.block(first + oracle())
    for height in range(2, blocks + 1):
        txs: list[bytes] = []
        for _ in range(rng.randint(2, 7)):
            roll = rng.random()
            m = rng.choice([0, 1])
            mark = prices[m]
            if roll < 0.30:
                mk = rng.choice(MAKERS)
                is_buy = rng.random() < 0.5
                px = five_sig(mark * (1000 + (-1 if is_buy else 1) * rng.randint(1, 15)) // 1000)
                txs.append(
                    w[mk].sign(
                        A.PlaceOrder(
                            market=m,
                            is_buy=is_buy,
                            price=px,
                            size=max(1, rng.randint(5_000, 50_000) * USDC // px),
                            tif=A.TIF_GTC,
                            reduce_only=False,
                            cloid=0,
                        ),
                        t(),
                    )
                )
            elif roll < 0.50:
                tr = rng.choice(TRADERS)
                is_buy = rng.random() < 0.5
                px = five_sig(mark * (1000 + (1 if is_buy else -1) * 20) // 1000)
                tif = rng.choice([A.TIF_IOC, A.TIF_IOC, A.TIF_GTC, A.TIF_FOK])
                txs.append(
                    w[tr].sign(
                        A.PlaceOrder(
                            market=m,
                            is_buy=is_buy,
                            price=px,
                            size=max(1, rng.randint(1_000, 200_000) * USDC // px),
                            tif=tif,
                            reduce_only=rng.random() < 0.2,
                            cloid=0,
                        ),
                        t(),
                    )
                )
            elif roll < 0.60:
                tr = rng.choice(TRADERS)
                txs.append(
                    w[tr].sign(
                        A.MarketOrder(
                            market=m,
                            is_buy=rng.random() < 0.5,
                            size=max(1, rng.randint(1_000, 50_000) * USDC // mark),
                            slippage_bps=300,
                            reduce_only=False,
                            cloid=0,
                        ),
                        t(),
                    )
                )
            elif roll < 0.70 and open_orders:
                oid = rng.choice(sorted(open_orders))
                owner, om = open_orders[oid]
                txs.append(w[owner].sign(A.Cancel(market=om, oid=oid), t()))
            elif roll < 0.78:
                a, b = rng.sample(TRADERS, 2)
                txs.append(w[a].sign(A.Transfer(to=w[b].address, amount=rng.randint(1, 2_000) * USDC), t()))
            elif roll < 0.84:
                tr = rng.choice(TRADERS)
                txs.append(w[tr].sign(A.Withdraw(amount=rng.randint(1, 3_000) * USDC, destination=w[tr].address), t()))
            elif roll < 0.90:
                ref += 1
                txs.append(
                    w["bridge"].sign(
                        A.Deposit(to=w[rng.choice(TRADERS)].address, amount=rng.randint(100, 20_000) * USDC, ref=ref),
                        t(),
                    )
                )
            elif roll < 0.95:
                tr = rng.choice(TRADERS)
                txs.append(
                    w[tr].sign(
                        A.UpdateLeverage(market=m, leverage=rng.choice([2, 5, 10, 20]), is_cross=rng.random() < 0.8),
                        t(),
                    )
                )
            else:
                txs.extend(oracle())
        advance = 3_600_000 if height % 97 == 0 else 1000
        ex = p.block(txs, advance_ms=advance)
        for ev in ex.events:
            if isinstance(ev, OrderStatus):
                if ev.status in ("resting", "trigger_pending") and ev.owner in names:
                    open_orders[ev.oid] = (names[ev.owner], ev.market)
                elif ev.status in ("filled", "canceled", "triggered"):
                    open_orders.pop(ev.oid, None)
    p.close()
    return p


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("crash") / "chain.log"
    p = build_log(path)
    headers = {
        item.block.header.height: item.block.header for _, item in iter_log(str(path)) if not isinstance(item, Genesis)
    }
    assert len(headers) == BLOCKS
    assert not check_all(p.engine.store)
    return {"log": path, "root": p.engine.store.root, "headers": headers, "producer": p}


def scratch_dir(tmp_path: Path) -> Path:
    """Where the killed LMDB directories live: tmpfs when there is one. A SIGKILL leaves the page
    cache intact, so what a killed process committed is the same on tmpfs as on disk; tmpfs only
    skips the fsync wait (power loss is LMDB's own guarantee, not what this test can show)."""
    import tempfile

    shm = Path("/dev/shm")
    if shm.is_dir():
        d = Path(tempfile.mkdtemp(prefix="ch-crash-", dir=shm))
        _CLEANUP.append(d)
        return d
    return tmp_path


_CLEANUP: list[Path] = []


@pytest.fixture(autouse=True, scope="module")
def _remove_scratch() -> Any:
    yield
    for d in _CLEANUP:
        shutil.rmtree(d, ignore_errors=True)


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clearinghouse.tools.cli", *args],
        env=subprocess_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def committed(db: Path) -> tuple[int, bytes, bytes | None, list[str]]:
    """(height, root, stored header hash, invariant violations) of a store; opening it checks the root."""
    with LmdbStore(db) as store:
        return store.height, store.root, store.get_meta("header_hash"), (check_all(store) if store.height >= 0 else [])


def test_sigkill_at_random_moments_then_resume(
    chain: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    log, headers, final_root = chain["log"], chain["headers"], chain["root"]
    last = max(headers)

    # An uninterrupted replay: the reference root, and the time that aims the kills.
    start = time.monotonic()
    full = cli("replay", str(log), "--db", str(scratch_dir(tmp_path) / "reference"), "--json", cwd=tmp_path)
    duration = time.monotonic() - start
    assert full.returncode == 0, full.stderr
    assert bytes.fromhex(json.loads(full.stdout)["state_root"]) == final_root

    kills = SOAK_KILLS if soak_enabled(request.config) else KILLS
    # Start-up costs: a replay of a genesis-only log, and a resume reading past stored blocks.
    genesis_only = tmp_path / "genesis.log"
    Producer(demo_genesis(), genesis_only, overwrite=True).close()
    t0 = time.monotonic()
    assert (
        cli("replay", str(genesis_only), "--db", str(scratch_dir(tmp_path) / "genesis"), cwd=tmp_path).returncode == 0
    )
    startup = time.monotonic() - t0
    t0 = time.monotonic()
    assert cli("replay", str(log), "--db", str(scratch_dir(tmp_path) / "reference"), cwd=tmp_path).returncode == 0
    skip_all = max(time.monotonic() - t0 - startup, 0.0)
    per_block = max(duration - startup, 0.1) / last
    step = max(4, 3 * last // kills)  # one or two passes over the log, in random steps
    rng = random.Random(20260102)
    db = scratch_dir(tmp_path) / "killed"
    cmd = [sys.executable, "-m", "clearinghouse.tools.cli", "replay", str(log), "--db", str(db), "--json"]
    done = fresh_starts = mid_replay = 0
    previous = -1
    heights = []
    scale = 1.0  # self-calibration: a shared machine makes every estimate above approximate
    runs = 0
    while (done < kills or mid_replay < kills // 2) and runs < 5 * kills:
        runs += 1
        proc = subprocess.Popen(
            cmd, env=subprocess_env(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        # Aim a little past the stored height: start-up, reading the stored blocks again, then
        # somewhere in the next ``step`` blocks (some kills land before the first commit: a crash too).
        resume = startup + skip_all * max(previous, 0) / last
        time.sleep(scale * (rng.uniform(0.6, 1.0) * resume + rng.uniform(0.0, 1.0) * step * per_block))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=120)
        err = proc.stderr.read().decode()
        proc.stderr.close()
        finished = rc != -signal.SIGKILL  # it may have finished just before the signal
        if finished:
            assert rc == 0, err
        else:
            done += 1
        if not db.exists():
            scale *= 1.3  # killed before it even created the store: aim later
            continue
        height, root, stored_hash, violations = committed(db)
        heights.append(height)
        if height > 0:
            assert root == headers[height].state_root, f"killed store at height {height} is not that block's state"
            assert stored_hash == header_hash(headers[height])
        assert not violations, violations
        if not finished and previous < height < last:
            mid_replay += 1
        if finished:
            scale *= 0.7
        elif height <= max(previous, 0):
            scale *= 1.3
        previous = height
        if last - height < 10:
            shutil.rmtree(db)  # start over so later kills land mid-replay again
            fresh_starts += 1
            previous = -1

    resumed = cli("replay", str(log), "--db", str(db), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert bytes.fromhex(summary["state_root"]) == final_root and summary["height"] == last
    audit = cli("audit", "--db", str(db), "--json", cwd=tmp_path)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert json.loads(audit.stdout)["ok"] is True
    RESULTS.update(kills=done, mid_replay_kills=mid_replay, fresh_starts=fresh_starts, runs=runs)
    RESULTS["heights"] = heights  # type: ignore[assignment]
    assert done >= kills and mid_replay >= kills // 2, (
        f"only {mid_replay} of {done} kills landed mid-replay (heights {heights})"
    )


def _torn(log: Path, tmp_path: Path, cut: float) -> Path:
    torn = tmp_path / "torn.log"
    shutil.copy(log, torn)
    entry = next(item for _, item in iter_log(str(log)) if not isinstance(item, Genesis))
    frame = encode_frame(FRAME_BLOCK, encode(entry))
    with open(torn, "ab") as f:
        f.write(frame[: max(1, int(len(frame) * cut))])
    return torn


@pytest.mark.parametrize("cut", [0.001, 0.5, 0.999])
def test_torn_log_tail_is_reported_not_taken(chain: dict[str, Any], tmp_path: Path, cut: float) -> None:
    log, headers = chain["log"], chain["headers"]
    torn = _torn(log, tmp_path, cut)
    runs = [["verify", str(torn)]]
    if cut == 0.5:
        db = scratch_dir(tmp_path) / "db"
        runs += [["replay", str(torn), "--db", str(db)], ["verify", str(torn), "--backend", "lmdb", "--json"]]
    for args in runs:
        out = cli(*args, cwd=tmp_path)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert out.stderr.startswith("error: LOG_TRUNCATED: truncated tail"), out.stderr
        assert "Traceback" not in out.stderr
    if cut != 0.5:
        return
    # The whole blocks before the tear were applied; the tail was not.
    height, root, _hash, violations = committed(db)
    assert height == max(headers) and root == chain["root"] and not violations
    # Repairing the tail (what the producer does on restart) gives a log that replays cleanly.
    with LogWriter(torn, create=False, repair_tail=True) as writer:
        assert writer.repaired_bytes > 0
    out = cli("verify", str(torn), "--json", cwd=tmp_path)
    assert out.returncode == 0 and bytes.fromhex(json.loads(out.stdout)["state_root"]) == chain["root"]


def test_torn_log_in_the_middle(chain: dict[str, Any], tmp_path: Path) -> None:
    """A log cut inside a block frame (the rest of the file lost): exit 1 at the tear, blocks before it kept."""
    data = chain["log"].read_bytes()
    cut = tmp_path / "cut.log"
    cut.write_bytes(data[: len(data) * 2 // 3])
    db = scratch_dir(tmp_path) / "db"
    out = cli("replay", str(cut), "--db", str(db), cwd=tmp_path)
    assert out.returncode == 1 and out.stderr.startswith("error: LOG_TRUNCATED"), out.stderr
    height, root, _hash, _v = committed(db)
    assert 0 < height < max(chain["headers"]) and root == chain["headers"][height].state_root
    # The intact log resumes from there.
    out = cli("replay", str(chain["log"]), "--db", str(db), "--json", cwd=tmp_path)
    assert out.returncode == 0 and json.loads(out.stdout)["blocks_skipped"] == height


def test_report_kills(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n[crash recovery] {RESULTS}")
