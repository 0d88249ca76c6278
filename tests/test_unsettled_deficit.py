"""The unsettled-deficit ban (protocol §10.2 step 2a, §10.3): no new order in a market while the unit
that would hold the position there owes a deficit the waterfall has not settled.

Issue 14's step 50 settles every user unit in its block, so such a deficit survives a block only when
that unit's waterfall step was undone (``WaterfallSkipped``); the tests therefore build the state by
hand on the waterfall test genesis (a flat isolated bucket below zero, or a cross account below zero
with no open cross position) and call the action handlers directly. Each time in force, the market
order and the trigger order are refused with ``INVALID_MARGIN_MODE`` and change nothing; the control
rows (a bucket at zero, a cross account below zero that still holds a cross position) are not
unsettled deficits.
"""

from __future__ import annotations

import msgspec
import pytest

from clearinghouse.spec.block import apply_genesis
from clearinghouse.spec.errors import InvalidMarginMode
from clearinghouse.spec.state.accounts import get_account, put_account
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import CHAIN_KEY, position_key
from clearinghouse.spec.state.records import Position
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState
from clearinghouse.spec.trading.matching import has_unsettled_deficit
from clearinghouse.spec.trading.orders import apply_market_order, apply_place_order, apply_trigger_order
from state import MemoryStore
from tests.waterfall_helpers import BTC, ETH, genesis, px, sz, usdc
from tx import actions as A

OWNER = b"\x0a" * 20
GTC, IOC, FOK, ALO = 0, 1, 2, 3


def flat_position(*, is_cross: bool, iso_cash: int, size: int = 0, cost: int = 0) -> Position:
    return Position(
        size=size,
        cost=cost,
        leverage=10,
        is_cross=is_cross,
        iso_cash=iso_cash,
        liq_cooldown_until_ms=0,
        funding_entry=0,
    )


def isolated_deficit(ws: WorkingState) -> None:
    """OWNER's BTC position is flat and isolated with a bucket 5 USDC below zero; cross cash is positive."""
    ws.put(position_key(BTC, OWNER), flat_position(is_cross=False, iso_cash=-usdc(5)))


def isolated_zero(ws: WorkingState) -> None:
    """Control: a flat isolated BTC position whose bucket is exactly zero owes nothing."""
    ws.put(position_key(BTC, OWNER), flat_position(is_cross=False, iso_cash=0))


def cross_deficit(ws: WorkingState) -> None:
    """OWNER's cross cash is 5 USDC below zero and it holds no open cross position anywhere."""
    put_account(ws, OWNER, msgspec.structs.replace(get_account(ws, OWNER), cash=-usdc(5)))


def cross_below_zero_with_a_position(ws: WorkingState) -> None:
    """Control: cross cash below zero but an open cross ETH long: an ordinary (liquidatable) unit, not a
    settled-but-unpaid deficit, so the ban does not apply (liquidation deals with it)."""
    put_account(ws, OWNER, msgspec.structs.replace(get_account(ws, OWNER), cash=-usdc(5), open_markets=[ETH]))
    ws.put(
        position_key(ETH, OWNER),
        flat_position(is_cross=True, iso_cash=0, size=sz(1, ETH), cost=sz(1, ETH) * px(1_000, ETH)),
    )


def state_with(setup) -> WorkingState:
    ws = WorkingState(MemoryStore(), KeyIndex())
    apply_genesis(ws, genesis())
    put_account(ws, OWNER, msgspec.structs.replace(get_account(ws, OWNER), cash=usdc(1_000)))
    setup(ws)
    return ws


def ctx_of(ws: WorkingState) -> TxContext:
    return TxContext(ws=ws, chain=ws.get(CHAIN_KEY), tx_index=0, signer=OWNER, account=OWNER, time_ms=0)


def place(tif: int):
    return lambda ctx: apply_place_order(
        ctx, A.PlaceOrder(market=BTC, is_buy=True, price=px(9_900), size=sz(1), tif=tif, reduce_only=False, cloid=0)
    )


def market_order(ctx: TxContext) -> None:
    apply_market_order(
        ctx, A.MarketOrder(market=BTC, is_buy=True, size=sz(1), slippage_bps=100, reduce_only=False, cloid=0)
    )


def trigger(ctx: TxContext) -> None:
    apply_trigger_order(
        ctx,
        A.TriggerOrder(
            market=BTC,
            is_buy=False,
            size=sz(1),
            trigger_price=px(9_000),
            is_take_profit=False,
            limit_price=0,
            reduce_only=False,
            cloid=0,
        ),
    )


ORDERS = {
    "GTC": place(GTC),
    "IOC": place(IOC),
    "FOK": place(FOK),
    "ALO": place(ALO),
    "market": market_order,
    "trigger": trigger,
}
DEFICITS = {"flat isolated bucket below zero": isolated_deficit, "flat cross account below zero": cross_deficit}


@pytest.mark.parametrize("deficit", list(DEFICITS.values()), ids=list(DEFICITS))
@pytest.mark.parametrize("order", list(ORDERS.values()), ids=list(ORDERS))
def test_no_new_order_while_the_unit_owes_an_unsettled_deficit(deficit, order) -> None:
    ws = state_with(deficit)
    assert has_unsettled_deficit(ws, OWNER, BTC)
    before = ws.changes()
    ws.begin_tx()
    with pytest.raises(InvalidMarginMode):
        order(ctx_of(ws))
    ws.rollback_tx()  # as apply_transaction does with a rejected transaction: nothing but the receipt
    assert ws.changes() == before


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (isolated_deficit, True),
        (isolated_zero, False),
        (cross_deficit, True),
        (cross_below_zero_with_a_position, False),
    ],
    ids=[
        "isolated bucket below zero",
        "isolated bucket at zero",
        "cross below zero, flat",
        "cross below zero, open position",
    ],
)
def test_what_counts_as_an_unsettled_deficit(setup, expected: bool) -> None:
    assert has_unsettled_deficit(state_with(setup), OWNER, BTC) is expected


def test_a_bucket_at_zero_may_rest_an_alo_order() -> None:
    """The control row through the handler: the same ALO order rests when nothing is owed."""
    ws = state_with(isolated_zero)
    place(ALO)(ctx_of(ws))
    assert get_account(ws, OWNER).open_orders == 1
