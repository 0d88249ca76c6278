"""Position transfers (protocol §10.9): the waterfall's administered moves are not trades.

``transfer_position`` is tested directly on a genesis state (table-driven: cross and isolated,
partial and whole closes, a counterparty that opens or flips; realized PnL of both sides and the
market's open interest worked out by hand), then through real blocks: a backstop and an ADL
block spend no order id, and no code under ``clearinghouse/spec`` builds a ``Taker`` except the
three places that send real orders into the book.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from clearinghouse.spec.block import apply_genesis
from clearinghouse.spec.errors import InvalidAmount
from clearinghouse.spec.events import Fill, OrderStatus, PositionTransfer
from clearinghouse.spec.state.accounts import get_account, put_account
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import (
    CHAIN_KEY,
    FEE_POOL,
    INSURANCE_FUND,
    market_spec_key,
    market_state_key,
    position_key,
)
from clearinghouse.spec.state.records import Position
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState
from clearinghouse.spec.trading.matching import MakerBoundExceeded
from clearinghouse.spec.trading.positions import settle_fill
from clearinghouse.spec.trading.transfer import TRANSFER_REASONS, transfer_position
from clearinghouse.spec.waterfall.events import AdlStep, Backstop, MarketLiquidation
from clearinghouse.tools.demo import USDC, demo_genesis
from state import MemoryStore
from tests.waterfall_helpers import BTC, WChain, of_type, one, px, sz, usdc

ROOT = Path(__file__).resolve().parent.parent
A, W, MAKER = b"\xaa" * 20, b"\xbb" * 20, b"\xcc" * 20
FUND = INSURANCE_FUND
NAMES = {"A": A, "W": W, "fund": FUND}
I64_MAX = 2**63 - 1


# ---------------------------------------------------------------- a bare state
def fresh() -> WorkingState:
    """The demo genesis with A, W and a deep-pocketed MAKER funded (1,000,000 USDC each)."""
    ws = WorkingState(MemoryStore(), KeyIndex())
    apply_genesis(ws, demo_genesis())
    for addr in (A, W, MAKER):
        put_account(ws, addr, msgspec.structs.replace(get_account(ws, addr), cash=1_000_000 * USDC))
    return ws


def ctx_of(ws: WorkingState) -> TxContext:
    return TxContext(ws=ws, chain=ws.get(CHAIN_KEY), tx_index=2**32 - 1, signer=A, account=A, time_ms=0)


def open_against_maker(ws: WorkingState, addr: bytes, size: int, price: int, isolated_leverage: int = 0) -> None:
    """Give ``addr`` a position of signed ``size`` at ``price``, MAKER taking the other side (as a
    fill would, so open interest stays right); ``isolated_leverage`` > 0 makes it isolated."""
    spec = ws.get(market_spec_key(BTC))
    if isolated_leverage:
        ws.put(
            position_key(BTC, addr),
            Position(
                size=0,
                cost=0,
                leverage=isolated_leverage,
                is_cross=False,
                iso_cash=0,
                liq_cooldown_until_ms=0,
                funding_entry=0,
            ),
        )
    settle_fill(ws, BTC, spec, addr, size, price, 0, lambda _event: None)
    settle_fill(ws, BTC, spec, MAKER, -size, price, 0, lambda _event: None)


def size_of(ws: WorkingState, addr: bytes) -> int:
    pos = ws.get(position_key(BTC, addr))
    return pos.size if pos is not None else 0


def open_interest(ws: WorkingState) -> int:
    return ws.get(market_state_key(BTC)).open_interest


# ---------------------------------------------------------------- table: what a transfer does
@dataclass(frozen=True)
class Case:
    """``setup``: name -> (signed size, entry price, isolated leverage or 0), each opened against MAKER."""

    setup: dict[str, tuple[int, int, int]]
    closing: str
    counterparty: str
    closing_is_buy: bool
    size: int
    price: int
    closing_pnl: int
    counterparty_pnl: int
    closing_after: int
    counterparty_after: int
    open_interest_before: int
    open_interest_after: int


CASES = {
    # A sells 4 of its long 10 at 110 to W (flat): A realizes 4 x (110 - 100) = 40, W opens long 4.
    # Open interest (total long): A 10 -> A 6 + W 4.
    "cross long, partial close, counterparty opens": Case(
        {"A": (10, 100, 0)}, "A", "W", False, 4, 110, 40, 0, 6, 4, 10, 10
    ),
    # ADL shape: underwater short A buys back 10 at 120 from winner W (long 10 at 80), who closes:
    # A -10 x 120 + 1,000 = -200; W 10 x 120 - 800 = +400. Longs: W 10 (MAKER nets to 0) -> none.
    "cross short closed whole against a long winner": Case(
        {"A": (-10, 100, 0), "W": (10, 80, 0)}, "A", "W", True, 10, 120, -200, 400, 0, 0, 10, 0
    ),
    # Backstop shape, isolated: A's long 10 at 100 (10x) goes to the fund at 95: -50 realized.
    # The fund opens long 10; MAKER keeps its short: open interest unchanged.
    "isolated long closed whole to the fund": Case(
        {"A": (10, 100, 10)}, "A", "fund", False, 10, 95, -50, 0, 0, 10, 10, 10
    ),
    # The fund, long 3 at 100, takes over A's short 5 at 110: it closes its 3 (+30) and flips to
    # short 2; A realizes -5 x 110 + 500 = -50. Longs: fund 3 + MAKER 2 -> MAKER 2.
    "counterparty flips (the fund taking over)": Case(
        {"A": (-5, 100, 0), "fund": (3, 100, 0)}, "A", "fund", True, 5, 110, -50, 30, 0, -2, 5, 2
    ),
    # Deficit-cover shape: winner W (short 8 at 100) buys 3 back at 90 from the fund: +30 for W.
    "winner's short slice to the fund (deficit cover)": Case(
        {"W": (-8, 100, 0)}, "W", "fund", True, 3, 90, 30, 0, -5, -3, 8, 8
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
@pytest.mark.parametrize("reason", TRANSFER_REASONS)
def test_transfer_moves_positions_and_realizes_pnl_on_both_sides(case: Case, reason: str) -> None:
    ws = fresh()
    for name, (size, price, lev) in case.setup.items():
        open_against_maker(ws, NAMES[name], size, price, lev)
    closing, counterparty = NAMES[case.closing], NAMES[case.counterparty]
    assert open_interest(ws) == case.open_interest_before
    chain_before, market_before = ws.get(CHAIN_KEY), ws.get(market_state_key(BTC))
    fee_pool_before = get_account(ws, FEE_POOL).cash
    cash_before = {a: get_account(ws, a).cash for a in (closing, counterparty)}
    ctx = ctx_of(ws)

    ev = transfer_position(
        ctx,
        BTC,
        ws.get(market_spec_key(BTC)),
        closing,
        counterparty,
        case.closing_is_buy,
        case.size,
        case.price,
        reason,
    )

    assert ctx.events == [ev]  # one event, no Fill, no OrderStatus
    assert ev == PositionTransfer(
        market=BTC,
        reason=reason,
        closing=closing,
        counterparty=counterparty,
        closing_is_buy=case.closing_is_buy,
        size=case.size,
        price=case.price,
        closing_realized_pnl=case.closing_pnl,
        counterparty_realized_pnl=case.counterparty_pnl,
    )
    assert (size_of(ws, closing), size_of(ws, counterparty)) == (case.closing_after, case.counterparty_after)
    assert open_interest(ws) == case.open_interest_after
    # Not a trade: no order id, no fee, no last trade price.
    assert ws.get(CHAIN_KEY).next_oid == chain_before.next_oid
    assert get_account(ws, FEE_POOL).cash == fee_pool_before
    assert ws.get(market_state_key(BTC)).last_trade_price == market_before.last_trade_price
    # Cash moves exactly by size x price between the two (cross sides; the isolated case returns
    # its bucket, 950 - 900 = 50, to cross).
    notional = case.size * case.price
    signed = notional if case.closing_is_buy else -notional
    if case.setup.get(case.closing, (0, 0, 0))[2]:
        assert get_account(ws, closing).cash - cash_before[closing] == 50
    else:
        assert get_account(ws, closing).cash - cash_before[closing] == -signed
    assert get_account(ws, counterparty).cash - cash_before[counterparty] == signed


REFUSED = {
    # (setup, closing, counterparty, closing_is_buy, size, reason, message)
    "closing side would flip": ({"A": 3}, A, W, False, 5, "adl", "holds 3 lots to close, not 5"),
    "closing side would open": ({}, A, W, False, 1, "backstop", "holds 0 lots to close, not 1"),
    "closing side's direction would grow it": ({"A": 3}, A, W, True, 1, "adl", "holds 0 lots to close, not 1"),
    "unknown reason": ({"A": 3}, A, W, False, 1, "liquidation", "unknown transfer reason"),
    "zero size": ({"A": 3}, A, W, False, 0, "adl", "positive number of lots"),
    "one account on both sides": ({"A": 3}, A, A, False, 1, "adl", "two accounts"),
}


@pytest.mark.parametrize("refused", list(REFUSED.values()), ids=list(REFUSED))
def test_transfer_refuses_caller_bugs_before_any_write(refused: tuple) -> None:
    setup, closing, counterparty, is_buy, size, reason, message = refused
    ws = fresh()
    for name, s in setup.items():
        open_against_maker(ws, NAMES[name], s, 100)
    positions_before = (size_of(ws, A), size_of(ws, W))
    ctx = ctx_of(ws)
    with pytest.raises(ValueError, match=message):
        transfer_position(ctx, BTC, ws.get(market_spec_key(BTC)), closing, counterparty, is_buy, size, 100, reason)
    assert ctx.events == [] and (size_of(ws, A), size_of(ws, W)) == positions_before


def test_a_counterparty_bound_is_a_plain_invalid_amount_not_a_maker_cancel() -> None:
    """The counterparty's cash would pass i64: INVALID_AMOUNT (the caller's unit is undone), not
    matching's MakerBoundExceeded (there is no maker order to cancel)."""
    ws = fresh()
    open_against_maker(ws, A, -10, 100)
    put_account(ws, W, msgspec.structs.replace(get_account(ws, W), cash=I64_MAX - 10))
    with pytest.raises(InvalidAmount) as info:
        # A buys 10 at 100 from W: W sells, receiving 1,000 on top of I64_MAX - 10.
        transfer_position(ctx_of(ws), BTC, ws.get(market_spec_key(BTC)), A, W, True, 10, 100, "adl")
    assert not isinstance(info.value, MakerBoundExceeded)


# ---------------------------------------------------------------- through real blocks
def test_backstop_block_spends_order_ids_only_for_liquidation_orders() -> None:
    """Mark 9,790 with an empty book: two market liquidation orders (one oid each, nothing fills),
    then two backstops as position transfers, which spend none."""
    c = WChain()
    c.fund(bob=300, carol=1_000, mm=10_000_000)
    c.cross_leverage("bob", BTC, 50)
    c.trade("bob", "mm", BTC, px(10_000), sz(1))
    c.isolated("carol", BTC, 50)
    c.trade("carol", "mm", BTC, px(10_000), sz(1))
    before = c.chain().next_oid
    r = c.crash({BTC: px(9_790)})
    ev = r.end_events
    assert len(of_type(ev, Backstop)) == 2
    moves = of_type(ev, PositionTransfer)
    assert sorted((t.reason, t.closing, t.counterparty, t.size) for t in moves) == sorted(
        [("backstop", c.addr("bob"), INSURANCE_FUND, sz(1)), ("backstop", c.addr("carol"), INSURANCE_FUND, sz(1))]
    )
    assert c.chain().next_oid - before == len(of_type(ev, MarketLiquidation)) == 2
    assert not of_type(ev, Fill)
    assert all(s.oid < before for s in of_type(ev, OrderStatus))  # no status for a transfer


def test_adl_block_spends_no_order_id_and_each_step_is_one_transfer() -> None:
    """The greedy walk of test_adl: a backstop then three ADL steps, one transfer each; the block's
    only new order id is the one liquidation order sent into the empty book."""
    c = WChain("hyperliquid", fund=300)
    c.fund(L=3_000, A=1_000, B=3_000, C=8_000, X=10_000)
    c.isolated("L", BTC, 10)
    c.trade("L", "A", BTC, px(10_000), sz(1))
    c.trade("L", "B", BTC, px(10_000), sz("1.5"))
    c.trade("L", "C", BTC, px(10_000), sz("0.5"))
    c.trade("X", "C", BTC, px(10_000), sz("1.5"))
    before = c.chain().next_oid
    r = c.crash({BTC: px(8_000)})
    ev = r.end_events
    steps = of_type(ev, AdlStep)
    adl = [t for t in of_type(ev, PositionTransfer) if t.reason == "adl"]
    assert [(t.counterparty, t.size, t.price, t.counterparty_realized_pnl) for t in adl] == [
        (s.counterparty, s.size, s.price, s.realized_pnl) for s in steps
    ]
    assert [s.realized_pnl for s in steps] == [usdc(1_100), usdc(1_650), usdc(550)]
    assert one(ev, MarketLiquidation).filled == 0
    assert c.chain().next_oid - before == 1


# ---------------------------------------------------------------- who may build a Taker
TAKER_BUILDERS = {"trading/orders.py", "trading/triggers.py", "waterfall/liquidation.py"}
"""The only sources of real orders: a trader's order, a fired trigger, a market liquidation order."""


def _calls(tree: ast.AST, name: str) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if called == name:
                lines.append(node.lineno)
    return lines


def test_only_order_sources_build_a_taker() -> None:
    spec = ROOT / "clearinghouse" / "spec"
    builders: dict[str, list[int]] = {}
    for path in sorted(spec.rglob("*.py")):
        lines = _calls(ast.parse(path.read_text()), "Taker")
        if lines:
            builders[path.relative_to(spec).as_posix()] = lines
    assert set(builders) == TAKER_BUILDERS, builders


def test_the_ast_scan_sees_a_taker_built_elsewhere() -> None:
    """The scan above cannot pass vacuously: it finds a Taker call in a snippet."""
    snippet = "from m import Taker\nt = Taker(owner=b'', oid=0)\nu = matching.Taker(1)\n"
    assert _calls(ast.parse(snippet), "Taker") == [2, 3]
