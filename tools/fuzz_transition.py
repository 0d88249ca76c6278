"""Coverage-guided fuzzing of the wire decoder and the state transition (atheris).

Every input is interpreted by ``one_input`` against one fixed, committed base
chain (funded traders, resting and trigger orders, cross and isolated
positions, an agent, prices). The first byte picks a mode:

0. the bytes as one transaction, in a block;
1. a valid transaction of the corpus, mutated (bit flips, byte overwrites,
   insertions, deletions, splices with other corpus entries), in a block;
2. the bytes as a ``Block``, a ``LogBlock``, a ``Header`` and a ``Genesis``
   (decoders only);
3. a block of several mutated and valid transactions, shuffled;
4. an action of the corpus with one field replaced by a hostile value
   (boundary integers, wrong-sized or foreign addresses, flipped booleans),
   *re-signed* by a chosen key (owner, agent, outsider, authority), so the
   handlers, not the signature check, have to reject it.

Blocks are executed with ``Engine.execute`` and never committed (the engine's
index is reset after each), so every input starts from the same state. The
harness asserts, for every input:

* the decoders raise nothing but ``tx.errors.TxError`` subclasses;
* the transition raises nothing at all: every transaction gets a receipt
  whose code is one of the typed ``clearinghouse.spec.errors`` codes;
* a block whose transactions were all rejected changes exactly what an empty
  block at the same height and time changes;
* the invariants of protocol §1.1 (``clearinghouse.tools.invariants.check_all``) hold on
  the state the block would commit.

Run (see tools/README.md)::

    pip install atheris
    python tools/fuzz_transition.py -atheris_runs=100000 corpus_dir/
    python tools/fuzz_transition.py --smoke 500        # no atheris: random inputs
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import msgspec  # noqa: E402

from clearinghouse.chain.engine import Engine, Executed  # noqa: E402
from clearinghouse.chain.producer import Producer  # noqa: E402
from clearinghouse.spec import errors as E  # noqa: E402
from clearinghouse.spec.events import OrderStatus, Receipt  # noqa: E402
from clearinghouse.spec.state.keys import FEE_POOL, INSURANCE_FUND  # noqa: E402
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState  # noqa: E402
from clearinghouse.tools.demo import USDC, demo_genesis  # noqa: E402
from clearinghouse.tools.invariants import check_all  # noqa: E402
from tx import actions as A  # noqa: E402
from tx.encoding import (  # noqa: E402
    decode_action,
    decode_block,
    decode_canonical,
    decode_genesis,
    decode_header,
    decode_transaction,
    encode,
)
from tx.errors import TxError  # noqa: E402
from tx.messages import LogBlock  # noqa: E402

TYPED_CODES = frozenset(
    {E.InvalidTransaction.code} | {cls.code for cls in E.InvalidTransaction.__subclasses__()} | {"OK"}
)
BTC, ETH = 0, 1
HOSTILE_INTS = (
    0,
    1,
    2,
    25,
    26,
    50,
    51,
    1000,
    1001,
    5000,
    5001,
    2**31,
    2**32 - 1,
    2**32,
    2**62,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -1,
    -(2**63),
    10**12,
    10**12 + 1,
    90_000_000,
    90_000_001,
    32_000_000,
)


# ---------------------------------------------------------------- input reading (atheris or not)
class Input:
    """Deterministic reader over the fuzzer's bytes (runs out gracefully: zeros)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def int(self, lo: int, hi: int) -> int:
        span = hi - lo + 1
        n = 0
        for _ in range(max(1, (span.bit_length() + 7) // 8)):
            n = (n << 8) | self.byte()
        return lo + n % span

    def bool(self) -> bool:
        return bool(self.byte() & 1)

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def rest(self) -> bytes:
        return self.take(len(self.data))

    def choice(self, seq: Any) -> Any:
        return seq[self.int(0, len(seq) - 1)]


# ---------------------------------------------------------------- the base chain
class Overlay:
    """A store's committed contents with an uncommitted block's changes on top (for the invariants)."""

    def __init__(self, store: Any, changes: dict[bytes, bytes | None]) -> None:
        self.store = store
        self.changes = changes

    def get(self, key: bytes) -> bytes | None:
        if key in self.changes:
            return self.changes[key]
        return self.store.get(key)

    def iter_all(self) -> Iterator[tuple[bytes, bytes]]:
        merged = dict(self.store.iter_all())
        for k, v in self.changes.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        return iter(sorted(merged.items()))

    def scan_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return iter([(k, v) for k, v in self.iter_all() if k.startswith(prefix)])


class Base:
    """The fixed chain every input runs against, its corpus and its signers."""

    def __init__(self) -> None:
        p = self.p = Producer(demo_genesis(insurance_fund=20_000 * USDC))
        names = ("bridge", "oracle-1", "oracle-2", "oracle-3", "alice", "bob", "carol", "mm", "alice-agent", "mallory")
        self.w = {n: p.wallet(n) for n in names}
        addr = self.addr
        self._block(
            [
                self.tx("bridge", A.Deposit(to=addr(n), amount=a * USDC, ref=i))
                for i, (n, a) in enumerate([("alice", 50_000), ("bob", 50_000), ("carol", 20_000), ("mm", 5_000_000)])
            ]
            + [
                self.tx(
                    o,
                    A.OracleUpdate(
                        prices=[
                            A.OraclePrice(market=BTC, oracle_price=90_000_000, external_price=90_000_000),
                            A.OraclePrice(market=ETH, oracle_price=32_000_000, external_price=32_000_000),
                        ]
                    ),
                )
                for o in ("oracle-1", "oracle-2", "oracle-3")
            ]
        )
        quotes = []
        for m, mid in ((BTC, 90_000_000), (ETH, 32_000_000)):
            for lvl in range(1, 4):
                quotes.append(
                    self.tx(
                        "mm",
                        A.PlaceOrder(
                            market=m,
                            is_buy=True,
                            price=mid - lvl * mid // 1000,
                            size=200 if m == BTC else 500,
                            tif=A.TIF_GTC,
                            reduce_only=False,
                            cloid=0,
                        ),
                    )
                )
                quotes.append(
                    self.tx(
                        "mm",
                        A.PlaceOrder(
                            market=m,
                            is_buy=False,
                            price=mid + lvl * mid // 1000,
                            size=200 if m == BTC else 500,
                            tif=A.TIF_GTC,
                            reduce_only=False,
                            cloid=0,
                        ),
                    )
                )
        self._block(
            quotes
            + [
                self.tx("alice", A.ApproveAgent(agent=addr("alice-agent"), approve=True)),
                self.tx("carol", A.UpdateLeverage(market=BTC, leverage=20, is_cross=False)),
                self.tx("bob", A.UpdateLeverage(market=ETH, leverage=10, is_cross=True)),
            ]
        )
        ex = self._block(
            [
                self.tx(
                    "carol",
                    A.PlaceOrder(
                        market=BTC, is_buy=True, price=90_100_000, size=150, tif=A.TIF_IOC, reduce_only=False, cloid=0
                    ),
                ),
                self.tx(
                    "bob",
                    A.MarketOrder(market=ETH, is_buy=False, size=400, slippage_bps=200, reduce_only=False, cloid=0),
                ),
                self.tx(
                    "alice",
                    A.PlaceOrder(
                        market=BTC, is_buy=True, price=85_000_000, size=50, tif=A.TIF_GTC, reduce_only=False, cloid=11
                    ),
                ),
                self.tx(
                    "alice",
                    A.TriggerOrder(
                        market=ETH,
                        is_buy=True,
                        size=100,
                        trigger_price=35_000_000,
                        is_take_profit=False,
                        limit_price=0,
                        reduce_only=False,
                        cloid=12,
                    ),
                ),
                self.tx(
                    "carol",
                    A.TriggerOrder(
                        market=BTC,
                        is_buy=False,
                        size=150,
                        trigger_price=95_000_000,
                        is_take_profit=True,
                        limit_price=94_000_000,
                        reduce_only=True,
                        cloid=13,
                    ),
                ),
            ]
        )
        self.oids = sorted({e.oid for e in ex.events if isinstance(e, OrderStatus)} | {1, 2, 3})
        self.engine: Engine = p.engine
        self.height = self.engine.height + 1
        self.time_ms = p.time_ms + 1000
        empty = self.engine.execute(self.height, self.time_ms, [])
        self.engine.reset_index()
        self.empty_changes = empty.changes
        self.empty_events = list(empty.events)
        self.actions = self._actions()
        self.corpus = [self.tx(signer, action) for signer, action in self.actions]
        self.addresses = [self.addr(n) for n in names] + [INSURANCE_FUND, FEE_POOL, bytes(20), b"\xff" * 20]

    def addr(self, name: str) -> bytes:
        return self.w[name].address

    def tx(self, name: str, action: Any, nonce: int | None = None) -> bytes:
        return self.w[name].sign(action, self.p.time_ms + 1000, nonce)

    def _block(self, txs: list[bytes]) -> Executed:
        ex = self.p.block(txs)
        bad = [(r.action, r.code, r.message) for r in ex.events if isinstance(r, Receipt) and not r.ok]
        assert not bad, bad
        return ex

    def _actions(self) -> list[tuple[str, Any]]:
        a = self.addr
        return [
            ("bridge", A.Deposit(to=a("bob"), amount=1_000 * USDC, ref=77)),
            ("alice", A.Withdraw(amount=100 * USDC, destination=a("alice"))),
            ("alice", A.Transfer(to=a("bob"), amount=100 * USDC)),
            (
                "alice",
                A.PlaceOrder(
                    market=BTC, is_buy=True, price=90_090_000, size=20, tif=A.TIF_GTC, reduce_only=False, cloid=21
                ),
            ),
            (
                "bob",
                A.PlaceOrder(
                    market=ETH, is_buy=True, price=32_100_000, size=400, tif=A.TIF_IOC, reduce_only=True, cloid=0
                ),
            ),
            (
                "alice",
                A.PlaceOrder(
                    market=ETH, is_buy=False, price=32_500_000, size=30, tif=A.TIF_ALO, reduce_only=False, cloid=0
                ),
            ),
            (
                "alice",
                A.PlaceOrder(
                    market=BTC, is_buy=False, price=89_900_000, size=30, tif=A.TIF_FOK, reduce_only=False, cloid=0
                ),
            ),
            (
                "alice-agent",
                A.MarketOrder(market=BTC, is_buy=True, size=10, slippage_bps=100, reduce_only=False, cloid=22),
            ),
            (
                "carol",
                A.TriggerOrder(
                    market=BTC,
                    is_buy=False,
                    size=150,
                    trigger_price=85_000_000,
                    is_take_profit=False,
                    limit_price=0,
                    reduce_only=True,
                    cloid=23,
                ),
            ),
            ("alice", A.Cancel(market=BTC, oid=self.oids[-1])),
            ("alice", A.CancelByCloid(market=BTC, cloid=11)),
            ("alice", A.Modify(market=BTC, oid=self.oids[0], price=86_000_000, size=40)),
            ("bob", A.UpdateLeverage(market=ETH, leverage=5, is_cross=True)),
            ("carol", A.UpdateIsolatedMargin(market=BTC, delta=-100 * USDC)),
            ("carol", A.UpdateIsolatedMargin(market=BTC, delta=500 * USDC)),
            ("bob", A.ApproveAgent(agent=a("mallory"), approve=True)),
            (
                "oracle-2",
                A.OracleUpdate(prices=[A.OraclePrice(market=BTC, oracle_price=45_000_000, external_price=45_000_000)]),
            ),
            ("oracle-1", A.OracleUpdate(prices=[A.OraclePrice(market=ETH, oracle_price=64_000_000, external_price=0)])),
        ]


_BASE: Base | None = None


def base() -> Base:
    global _BASE
    if _BASE is None:
        _BASE = Base()
    return _BASE


# ---------------------------------------------------------------- mutations
def mutate(data: bytes, inp: Input, corpus: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(inp.int(1, 4)):
        op = inp.int(0, 5)
        pos = inp.int(0, max(0, len(b) - 1)) if b else 0
        if op == 0 and b:
            b[pos] ^= 1 << inp.int(0, 7)
        elif op == 1 and b:
            b[pos] = inp.byte()
        elif op == 2:
            b[pos:pos] = inp.take(inp.int(1, 8))
        elif op == 3 and b:
            del b[pos : pos + inp.int(1, 8)]
        elif op == 4:
            other = inp.choice(corpus)
            cut = inp.int(0, len(other))
            b = b[:pos] + bytearray(other[cut:])
        else:
            b = b[: inp.int(0, len(b))]
    return bytes(b)


def hostile_value(original: Any, inp: Input, addresses: list[bytes]) -> Any:
    if isinstance(original, bool):
        return not original if inp.bool() else inp.choice([0, 1, None])
    if isinstance(original, int):
        if inp.int(0, 3) == 0:
            return original + inp.int(-3, 3)
        return inp.choice(HOSTILE_INTS)
    if isinstance(original, bytes):
        k = inp.int(0, 3)
        if k == 0:
            return inp.take(inp.int(0, 40))
        return inp.choice(addresses)
    if isinstance(original, list):
        return [] if inp.bool() else original * inp.int(2, 70)
    return None


# ---------------------------------------------------------------- checks
def check_decoders(data: bytes) -> None:
    for decode in (
        decode_transaction,
        decode_block,
        decode_header,
        decode_genesis,
        decode_action,
        lambda d: decode_canonical(d, LogBlock),
    ):
        try:
            decode(data)
        except TxError:
            pass


def run_block(b: Base, txs: list[bytes]) -> None:
    engine = b.engine
    try:
        executed = engine.execute(b.height, b.time_ms, txs)
    finally:
        engine.reset_index()
    receipts = [e for e in executed.events if isinstance(e, Receipt)]
    assert sorted(r.tx_index for r in receipts) == list(range(len(txs))), "one receipt per transaction"
    for r in receipts:
        assert r.code in TYPED_CODES, f"untyped code {r.code!r}: {r.message}"
        assert r.ok == (r.code == "OK")
    if txs and not any(r.ok for r in receipts):
        assert executed.changes == b.empty_changes, "rejected transactions changed state"
        assert [e for e in executed.events if not isinstance(e, Receipt)] == b.empty_events
    overlay = Overlay(engine.store, executed.changes)
    violations = check_all(overlay, WorkingState(overlay, KeyIndex.load(overlay)))
    assert not violations, violations


def one_input(data: bytes) -> None:
    """Interpret ``data`` (see the module docstring) and check every property; raises on a finding."""
    b = base()
    inp = Input(data)
    mode = inp.int(0, 4)
    if mode == 0:
        raw = inp.rest()
        check_decoders(raw)
        if len(raw) <= 16_384:
            run_block(b, [raw])
    elif mode == 1:
        raw = mutate(inp.choice(b.corpus), inp, b.corpus)
        check_decoders(raw)
        if len(raw) <= 16_384:
            run_block(b, [raw])
    elif mode == 2:
        check_decoders(inp.rest())
    elif mode == 3:
        txs = []
        for _ in range(inp.int(1, 8)):
            raw = inp.choice(b.corpus)
            txs.append(mutate(raw, inp, b.corpus) if inp.bool() else raw)
        rng = random.Random(inp.int(0, 2**16))
        rng.shuffle(txs)
        run_block(b, [t for t in txs if len(t) <= 16_384])
    else:
        txs = []
        for _ in range(inp.int(1, 3)):
            signer, action = inp.choice(b.actions)
            tree = msgspec.msgpack.decode(encode(action))
            field = inp.int(1, len(tree) - 1)
            tree[field] = hostile_value(tree[field], inp, b.addresses)
            try:
                mutated = decode_action(msgspec.msgpack.encode(tree))
            except (TxError, OverflowError):
                continue
            if inp.int(0, 3) == 0:
                signer = inp.choice(sorted(b.w))
            txs.append(b.tx(signer, mutated))
        run_block(b, txs)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' entry point name
    one_input(data)


def smoke(runs: int, seed: int = 0) -> None:
    """Random inputs without atheris (CI smoke test, quick local checks)."""
    rng = random.Random(seed)
    for _ in range(runs):
        one_input(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 300))))


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[1] == "--smoke":
        runs = int(argv[2]) if len(argv) > 2 else 200
        smoke(runs, int(os.environ.get("FUZZ_SEED", "0")))
        print(f"smoke: {runs} inputs, no finding")
        return
    import atheris

    base()  # build the chain before instrumentation starts counting
    atheris.instrument_all()
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
