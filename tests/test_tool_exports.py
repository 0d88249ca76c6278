"""Issue 11, Hyperliquid-shaped exports: field sets equal Hyperliquid's, liquidation and ADL fills are
marked as Hyperliquid marks them, and fees, PnL and funding reconcile with the audited state.
"""

from __future__ import annotations

import io
import json
import tracemalloc
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_tool_safety import run_cli

ROOT = Path(__file__).resolve().parent.parent
CASCADE = ROOT / "fixtures" / "scenarios" / "cascade_hyperliquid.toml"

HL_FILL = {
    "coin",
    "px",
    "sz",
    "side",
    "time",
    "startPosition",
    "dir",
    "closedPnl",
    "hash",
    "oid",
    "crossed",
    "fee",
    "tid",
    "feeToken",
}
HL_LIQUIDATION = {"liquidatedUser", "markPx", "method"}
HL_STATE = {
    "marginSummary",
    "crossMarginSummary",
    "crossMaintenanceMarginUsed",
    "withdrawable",
    "assetPositions",
    "time",
}
HL_SUMMARY = {"accountValue", "totalNtlPos", "totalRawUsd", "totalMarginUsed"}
HL_POSITION = {
    "coin",
    "szi",
    "entryPx",
    "positionValue",
    "unrealizedPnl",
    "returnOnEquity",
    "liquidationPx",
    "leverage",
    "marginUsed",
    "maxLeverage",
    "cumFunding",
}
HL_FUNDING_DELTA = {"type", "coin", "usdc", "szi", "fundingRate", "nSamples"}


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    base = tmp_path_factory.mktemp("exports")
    out = {}
    rc, _o, err = run_cli(["demo", "--out", base / "demo", "--json"])
    assert rc == 0, err
    out["demo"] = {"log": base / "demo" / "demo.log", "db": base / "demo" / "state"}
    log, db = base / "cascade.log", base / "cascade-db"
    assert run_cli(["scenario", "compile", CASCADE, "--log", log])[0] == 0
    assert run_cli(["replay", log, "--db", db, "--json"])[0] == 0
    out["cascade"] = {"log": log, "db": db}
    return out


def export(kind: str, source: Path, *extra: Any) -> list[dict[str, Any]]:
    rc, out, err = run_cli(["export", kind, source, *extra])
    assert rc == 0, err
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("chain", ["demo", "cascade"])
def test_fill_fields_are_hyperliquids(chains: dict, chain: str) -> None:
    fills = export("fills", chains[chain]["log"])
    assert fills
    for f in fills:
        assert set(f) - {"user", "liquidation"} == HL_FILL, f
        assert (
            f["side"] in ("B", "A")
            and isinstance(f["crossed"], bool)
            and isinstance(f["tid"], int)
            and isinstance(f["oid"], int)
        )
        for k in ("px", "sz", "startPosition", "closedPnl", "fee"):
            Decimal(f[k])  # decimal strings
        if "liquidation" in f:
            assert set(f["liquidation"]) == HL_LIQUIDATION and f["liquidation"]["method"] in ("market", "backstop")
    user = fills[0]["user"]
    mine = export("fills", chains[chain]["log"], "--user", user)
    assert mine and all(set(f) - {"liquidation"} == HL_FILL for f in mine)
    assert len(mine) == sum(1 for f in fills if f["user"] == user)


@pytest.mark.parametrize("chain", ["demo", "cascade"])
def test_liquidation_and_adl_fills_are_marked(chains: dict, chain: str) -> None:
    rc, out, _err = run_cli(["verify", chains[chain]["log"], "--json"])
    summary = json.loads(out)
    fills = export("fills", chains[chain]["log"])
    adl = [f for f in fills if f["dir"] == "Auto-Deleveraging"]
    assert len(adl) == 2 * summary["adl_fills"] > 0  # both sides of every ADL fill
    assert all("liquidation" in f for f in adl)
    liq = [f for f in fills if f.get("liquidation", {}).get("method") == "market"]
    assert len(liq) == 2 * summary["liquidation_fills"] > 0
    liquidated_users = {f["liquidation"]["liquidatedUser"] for f in liq}
    assert all(
        f["dir"] in ("Close Long", "Close Short")
        for f in liq
        if f["user"] in liquidated_users and f["user"] == f["liquidation"]["liquidatedUser"]
    )
    if summary["backstops"]:
        assert any(f["dir"].startswith("Liquidated ") for f in fills)


@pytest.mark.parametrize("chain", ["demo", "cascade"])
def test_state_fields_are_hyperliquids(chains: dict, chain: str) -> None:
    rc, out, _err = run_cli(["replay", chains[chain]["log"], "--db", chains[chain]["db"], "--json"])
    seen_position = False
    for acct in json.loads(out)["accounts"]:
        for source in (chains[chain]["log"], chains[chain]["db"]):
            (state,) = export("state", source, "--user", acct["address"])
            assert set(state) == HL_STATE
            assert set(state["marginSummary"]) == HL_SUMMARY == set(state["crossMarginSummary"])
            for ap in state["assetPositions"]:
                seen_position = True
                assert ap["type"] == "oneWay" and set(ap["position"]) == HL_POSITION
                lev = ap["position"]["leverage"]
                assert lev["type"] in ("cross", "isolated") and isinstance(lev["value"], int)
                assert ("rawUsd" in lev) == (lev["type"] == "isolated")
                assert set(ap["position"]["cumFunding"]) == {"allTime", "sinceOpen", "sinceChange"}
    assert seen_position


def test_state_at_an_earlier_height(chains: dict) -> None:
    log, db = chains["demo"]["log"], chains["demo"]["db"]
    (early,) = export("state", log, "--user", "dave", "--height", "8")
    (late,) = export("state", log, "--user", "dave")
    assert early["assetPositions"] and early["assetPositions"][0]["position"]["leverage"]["type"] == "isolated"
    assert not late["assetPositions"]  # backstopped at height 9
    rc, _out, err = run_cli(["export", "state", db, "--user", "dave", "--height", "8"])
    assert rc == 1 and "from the log" in err
    rc, _out, err = run_cli(["export", "state", log, "--user", "dvae"])
    assert rc == 1 and "did you mean dave" in err


def test_funding_records_are_hyperliquids(chains: dict) -> None:
    funding = export("funding", chains["demo"]["log"])
    assert funding
    for r in funding:
        assert (
            set(r) == {"time", "hash", "delta", "user"}
            and set(r["delta"]) == HL_FUNDING_DELTA
            and r["delta"]["type"] == "funding"
        )
    ledger = export("ledger", chains["demo"]["log"])
    residue = sum(Decimal(r["delta"]["usdc"]) for r in ledger if r["delta"]["type"] == "fundingResidue")
    # Funding is zero-sum: what positions paid in and did not draw out is in the markets' funding
    # pools (held for the positions not yet settled, protocol §11.6) or swept to the fund as residue.
    from clearinghouse.chain.engine import Engine, replay_log
    from clearinghouse.spec.state.keys import NS_MARKET_STATE
    from state import MemoryStore

    engine = Engine(MemoryStore())
    replay_log(engine, str(chains["demo"]["log"]))
    view = engine.view()
    pools = sum(view.get(k).funding_pool for k, _ in engine.store.scan_prefix(NS_MARKET_STATE))
    assert sum(Decimal(r["delta"]["usdc"]) for r in funding) + residue + Decimal(pools) / 10**6 == 0


@pytest.mark.parametrize("chain", ["demo", "cascade"])
def test_fees_pnl_and_funding_reconcile_with_the_audited_state(chains: dict, chain: str) -> None:
    """Per account: ledger (deposits, withdrawals, transfers, funding, fees, backstop margin, covers) + closed PnL
    + unrealized PnL = account value in state; the state passes audit --deep."""
    log, db = chains[chain]["log"], chains[chain]["db"]
    rc, out, err = run_cli(["audit", "--db", db, "--deep", "--json"])
    assert rc == 0, err
    equity: dict[str, Decimal] = defaultdict(Decimal)
    fees: dict[str, Decimal] = defaultdict(Decimal)
    for r in export("ledger", log):
        equity[r["user"]] += Decimal(r["delta"]["usdc"])
    for f in export("fills", log):
        equity[f["user"]] += Decimal(f["closedPnl"])
        fees[f["user"]] += Decimal(f["fee"])
    ledger_fees = defaultdict(Decimal)
    for r in export("ledger", log):
        if r["delta"]["type"] == "fee" and Decimal(r["delta"]["usdc"]) < 0:
            ledger_fees[r["user"]] -= Decimal(r["delta"]["usdc"])
    assert {k: v for k, v in fees.items() if v} == dict(ledger_fees)
    rc, out, _err = run_cli(["replay", log, "--db", db, "--json"])
    accounts = json.loads(out)["accounts"]
    for acct in accounts:
        (state,) = export("state", db, "--user", acct["address"])
        upnl = sum(Decimal(p["position"]["unrealizedPnl"]) for p in state["assetPositions"])
        # Funding accrued since a position's last change is in its value but not yet in the ledger.
        unsettled = sum(Decimal(p["position"]["cumFunding"]["sinceChange"]) for p in state["assetPositions"])
        assert Decimal(state["marginSummary"]["accountValue"]) == equity[acct["address"].lower()] + upnl - unsettled, (
            acct
        )
    fee_pool = next(a for a in accounts if a["address"].endswith("0000000002"))
    assert Decimal(fee_pool["cash_usdc"]) == sum(fees.values())


@pytest.mark.parametrize("kind", ["fills", "funding", "ledger", "liquidations"])
def test_log_and_database_exports_agree_and_csv_matches(chains: dict, kind: str) -> None:
    from_log = export(kind, chains["demo"]["log"])
    from_db = export(kind, chains["demo"]["db"])
    assert from_log == from_db and from_log
    rc, out, err = run_cli(["export", kind, chains["demo"]["db"], "--format", "csv"])
    assert rc == 0, err
    import csv

    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(from_log)


def test_liquidations_carry_the_evidence(chains: dict) -> None:
    events = export("liquidations", chains["cascade"]["log"])
    types = {e["type"] for e in events}
    assert {"LiquidationTriggered", "AdlQueue", "AdlStep"} <= types
    queue = next(e for e in events if e["type"] == "AdlQueue")
    assert queue["top"] and queue["ranking_hash"] and "bankruptcy_price_usdc" in queue


def test_output_file_is_written_atomically(chains: dict, tmp_path: Path) -> None:
    out = tmp_path / "fills.jsonl"
    rc, _o, err = run_cli(["export", "fills", chains["demo"]["log"], "-o", out])
    assert rc == 0 and "wrote" in err
    assert len(out.read_text().splitlines()) == len(export("fills", chains["demo"]["log"]))
    assert not (tmp_path / "fills.jsonl.partial").exists()


def _transfer_log(path: Path, blocks: int) -> None:
    from clearinghouse.chain.producer import Producer
    from clearinghouse.tools.demo import USDC, demo_genesis
    from tx.actions import Deposit, Transfer

    p = Producer(demo_genesis(), str(path), overwrite=True)
    bridge = p.wallet("bridge")
    wallets = [p.wallet(f"m{i}") for i in range(30)]
    p.block(
        [
            bridge.sign(Deposit(to=w.address, amount=1_000 * USDC, ref=i + 1), p.time_ms + 1000)
            for i, w in enumerate(wallets)
        ]
    )
    for b in range(blocks):
        p.block(
            [
                w.sign(Transfer(to=wallets[(i + 1) % 30].address, amount=1 + b), p.time_ms + 1000)
                for i, w in enumerate(wallets)
            ]
        )
    p.close()


def test_exports_stream_in_constant_memory(tmp_path: Path) -> None:
    """Peak memory of a ledger export does not grow with the length of the log (the first record comes early)."""
    from clearinghouse.tools.exports import Source, iter_ledger, run_export

    peaks = []
    for blocks in (40, 160):
        log = tmp_path / f"t{blocks}.log"
        _transfer_log(log, blocks)
        sink = io.StringIO()
        tracemalloc.start()
        n = run_export("ledger", str(log), out=_NullWriter())
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert n == 30 + 2 * 30 * blocks + 1
        del sink
    assert peaks[1] < peaks[0] * 1.5, peaks
    with Source.open(str(tmp_path / "t160.log")) as src:
        next(iter_ledger(src))
        assert src.height <= 1  # the first record came before the rest of the log was replayed


class _NullWriter(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)


SCENARIOS = sorted(p.stem for p in (ROOT / "fixtures" / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_fixture_scenario_reconciles(tmp_path: Path, name: str) -> None:
    """On every fixture (the seed policy's deficit covers included): the fills' running positions equal the
    positions in state, and ledger + closed PnL + unrealized PnL equal each account's value."""
    import msgspec

    from clearinghouse.spec.state.keys import NS_POSITION, record_type
    from clearinghouse.tools.exports import Source, Tracker, iter_fills

    log, db = tmp_path / "s.log", tmp_path / "db"
    assert run_cli(["scenario", "compile", ROOT / "fixtures" / "scenarios" / f"{name}.toml", "--log", log])[0] == 0
    assert run_cli(["replay", log, "--db", db, "--json"])[0] == 0
    tracker = Tracker()
    with Source.open(str(log)) as src:
        for _ in iter_fills(src, tracker=tracker):
            pass
        in_state = {}
        for key, raw in src._store.scan_prefix(NS_POSITION):
            pos = msgspec.msgpack.decode(raw, type=record_type(key))
            if pos.size:
                in_state[(key[5:], int.from_bytes(key[1:5], "big"))] = pos.size
    assert tracker.size == in_state
    equity: dict[str, Decimal] = defaultdict(Decimal)
    for r in export("ledger", log):
        equity[r["user"]] += Decimal(r["delta"]["usdc"])
    for f in export("fills", log):
        equity[f["user"]] += Decimal(f["closedPnl"])
    rc, out, _err = run_cli(["replay", log, "--db", db, "--json"])
    for acct in json.loads(out)["accounts"]:
        (state,) = export("state", db, "--user", acct["address"])
        upnl = sum(Decimal(p["position"]["unrealizedPnl"]) for p in state["assetPositions"])
        assert Decimal(state["marginSummary"]["accountValue"]) == equity[acct["address"].lower()] + upnl, (
            name,
            acct["address"],
        )
