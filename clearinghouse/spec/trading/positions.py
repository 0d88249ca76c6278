"""Positions: applying a fill to one side, entry price, realized PnL, open interest.

Cash model (records.py): a buyer's bucket pays ``qty x price``, a seller's
receives it, so fills are zero-sum in cash. ``cost`` (signed entry notional)
only serves the entry price and realized PnL:

* increase: cost += signed_qty x price (entry price is size-weighted);
* reduction by q of |size|: the closed part's cost is cost x q / |size|
  truncated toward zero; realized PnL = sign(size) x q x price - closed cost;
  the truncation remainder stays in the position, so over the life of a
  position realized PnL adds up exactly;
* a fill through zero is a close of the whole position, then an open of the
  rest at the same price.

Isolated positions keep their own bucket (``iso_cash``): an increase moves
initial margin (notional / leverage, rounded up) from cross cash into it;
when the position returns to zero the whole bucket goes back to cross cash
(unless it is negative: that deficit stays isolated for the waterfall).

Lazy funding (protocol §11.6): a position's funding is settled whenever its
size changes (every fill and transfer goes through ``settle_fill``, which calls
``settle_funding`` first), so ``size x (funding_index - funding_entry)`` is
always the exact funding owed at constant size. Leverage, margin-mode (only
while flat) and isolated-margin changes do not move funding and need no
settlement: value and margin count the unsettled amount
(``unsettled_funding``) with the settlement's own rounding.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

import msgspec

from clearinghouse.spec.constants import DEFAULT_LEVERAGE, MAX_OPEN_INTEREST
from clearinghouse.spec.errors import LimitExceeded
from clearinghouse.spec.events import BaseEvent, FundingPaid
from clearinghouse.spec.math.funding import pool_after, settlement, unsettled_amount
from clearinghouse.spec.math.integers import ceil_div, div_toward_zero
from clearinghouse.spec.math.pnl import closed_cost, realized_pnl
from clearinghouse.spec.state.access import get_market_state, get_position
from clearinghouse.spec.state.accounts import add_cash, checked_i64, get_account, put_account
from clearinghouse.spec.state.keys import INSURANCE_FUND, market_state_key, position_key
from clearinghouse.spec.state.records import MarketState, Position
from clearinghouse.spec.state.working_state import WorkingState
from tx.messages import MarketSpec


def default_position(spec: MarketSpec) -> Position:
    """The position an account holds in a market it never traded: flat, cross, default leverage (protocol §10.4)."""
    return Position(
        size=0,
        cost=0,
        leverage=min(DEFAULT_LEVERAGE, spec.max_leverage),
        is_cross=True,
        iso_cash=0,
        liq_cooldown_until_ms=0,
        funding_entry=0,
    )


def get_or_default(ws: WorkingState, market: int, addr: bytes, spec: MarketSpec) -> Position:
    """``addr``'s position in ``market``, or the default one if none is stored (protocol §10.4)."""
    pos = get_position(ws, market, addr)
    return pos if pos is not None else default_position(spec)


def unsettled_funding(pos: Position, state: MarketState) -> int:
    """Funding the position owes and has not paid (micro-USDC; negative: it is owed), protocol §11.6.

    ceil(size x (funding_index - funding_entry) / 10^9): rounded up, against
    the account, exactly as ``settle_funding`` would move it. Value and
    margin (``trading.margin``, ``waterfall.units``) subtract it; a unit's is
    the sum over its open positions (``waterfall.units.unit_unsettled_funding``).
    """
    if pos.size == 0:
        return 0
    return unsettled_amount(pos.size, state.funding_index, pos.funding_entry)


def settle_funding(ws: WorkingState, market: int, addr: bytes, pos: Position) -> tuple[Position, FundingPaid | None]:
    """Pay a position's unsettled funding and move its entry snapshot to the market's index
    (protocol §11.6).

    The amount (``spec.math.funding.settlement``: rounded up, against the
    account) leaves the cross cash (cross) or the bucket (isolated) and enters
    the market's ``funding_pool``; the rounding dust accumulates in
    ``funding_dust_e9`` and whole micro-USDC of it go to the insurance fund.
    Returns the position to build on (not stored: the caller stores it) and
    the ``FundingPaid`` event, None if nothing was owed. A flat position only
    takes the snapshot.

    Raises:
        InvalidAmount: the cash, bucket or pool would leave its 64-bit range.
    """
    state: MarketState = ws.get(market_state_key(market))
    index = state.funding_index
    if pos.funding_entry == index:
        return pos, None
    if pos.size == 0:
        return msgspec.structs.replace(pos, funding_entry=index), None
    s = settlement(pos.size, index, pos.funding_entry)
    upd = pool_after(state.funding_pool, state.funding_dust_e9, s)
    if pos.is_cross:
        if s.amount:
            add_cash(ws, addr, -s.amount)
        pos = msgspec.structs.replace(pos, funding_entry=index)
    else:
        pos = msgspec.structs.replace(
            pos, funding_entry=index, iso_cash=checked_i64(pos.iso_cash - s.amount, "isolated cash")
        )
    if upd.swept:
        add_cash(ws, INSURANCE_FUND, upd.swept)
    ws.put(
        market_state_key(market),
        msgspec.structs.replace(state, funding_pool=checked_i64(upd.pool, "funding pool"), funding_dust_e9=upd.dust_e9),
    )
    event = FundingPaid(
        market=market, account=addr, size=pos.size, is_cross=pos.is_cross, amount=s.amount, swept=upd.swept
    )
    return pos, event


def entry_price(pos: Position) -> int:
    """Entry price |cost| / |size| (positive for longs and shorts alike), rounded toward zero
    (display and ADL ranking use exact fractions instead).

    See protocol §10.4.
    """
    return div_toward_zero(abs(pos.cost), abs(pos.size)) if pos.size else 0


def put_position(ws: WorkingState, market: int, addr: bytes, pos: Position, spec: MarketSpec) -> None:
    """Store a position and keep the account's ``open_markets`` list in step (protocol §10.4).

    A flat position with default settings is deleted (nothing to remember).
    """
    key = position_key(market, addr)
    if (
        pos.size == 0
        and pos.iso_cash == 0
        and pos.is_cross
        and pos.leverage == min(DEFAULT_LEVERAGE, spec.max_leverage)
        and pos.liq_cooldown_until_ms == 0
    ):
        ws.delete(key)
    else:
        ws.put(key, pos)
    acct = get_account(ws, addr)
    markets = acct.open_markets
    i = bisect.bisect_left(markets, market)
    present = i < len(markets) and markets[i] == market
    if pos.size != 0 and not present:
        markets = markets[:i] + [market] + markets[i:]
    elif pos.size == 0 and present:
        markets = markets[:i] + markets[i + 1 :]
    else:
        return
    put_account(ws, addr, msgspec.structs.replace(acct, open_markets=markets))


def _adjust_open_interest(ws: WorkingState, market: int, old_size: int, new_size: int) -> None:
    """Open interest = total long size; kept in the market state.

    One side of a fill may pass the bound on its own while the other side brings it back, so
    the bound is checked once per fill, after both sides (``check_open_interest``).
    """
    delta = max(new_size, 0) - max(old_size, 0)
    if delta:
        ms = get_market_state(ws, market)
        ws.put(market_state_key(market), msgspec.structs.replace(ms, open_interest=ms.open_interest + delta))


def check_open_interest(ws: WorkingState, market: int) -> None:
    """Reject a fill that leaves the market's open interest above ``MAX_OPEN_INTEREST``
    (``LIMIT_EXCEEDED``, protocol §2.3); it can only grow through fills that open longs.

    Raises:
        LimitExceeded: the market's open interest is above ``MAX_OPEN_INTEREST``.
    """
    oi = get_market_state(ws, market).open_interest
    if oi > MAX_OPEN_INTEREST:
        raise LimitExceeded(f"open interest of market {market} would exceed {MAX_OPEN_INTEREST} lots")


def settle_fill(
    ws: WorkingState,
    market: int,
    spec: MarketSpec,
    addr: bytes,
    signed_qty: int,
    price: int,
    fee: int,
    emit: Callable[[BaseEvent], None],
) -> int:
    """Apply one side of a fill (``signed_qty`` > 0 buys) and its fee; returns realized PnL (protocol §10.4).

    The position's funding is settled first (``settle_funding``; its
    ``FundingPaid`` goes to ``emit``), so the size changes at a fresh entry snapshot.

    Raises:
        InvalidAmount: cash, size, cost, isolated cash, the funding pool or realized PnL
            would leave its 64-bit range (protocol §2.3).
    """
    pos, paid = settle_funding(ws, market, addr, get_or_default(ws, market, addr, spec))
    if paid is not None:
        emit(paid)
    s = pos.size
    if s != 0 and (s > 0) != (signed_qty > 0) and abs(signed_qty) > abs(s):
        if paid is not None:
            # Store the settled position so the two halves below start from it.
            ws.put(position_key(market, addr), pos)
        realized = settle_fill(ws, market, spec, addr, -s, price, fee, emit)
        settle_fill(ws, market, spec, addr, signed_qty + s, price, 0, emit)
        return realized

    realized = 0
    if s == 0 or (s > 0) == (signed_qty > 0):
        new_size = s + signed_qty
        new_cost = pos.cost + signed_qty * price
        increase = True
    else:
        q = abs(signed_qty)
        realized = realized_pnl(s, pos.cost, q, price)
        new_size = s + signed_qty
        new_cost = pos.cost - closed_cost(s, pos.cost, q)
        increase = False

    cash_delta = -signed_qty * price - fee
    if pos.is_cross:
        acct = get_account(ws, addr)
        put_account(ws, addr, msgspec.structs.replace(acct, cash=checked_i64(acct.cash + cash_delta, "cash")))
        iso_cash = 0
    else:
        iso_cash = pos.iso_cash + cash_delta
        to_cross = 0
        if increase:
            # Initial margin for the added notional moves from cross into the bucket (rounded up).
            margin = ceil_div(abs(signed_qty) * price, pos.leverage)
            iso_cash += margin
            to_cross -= margin
        if new_size == 0 and iso_cash >= 0:
            # A closed isolated position returns its bucket to cross. A negative bucket
            # (closed beyond bankruptcy) stays where it is: it is that position's deficit,
            # which the liquidation waterfall covers, never the owner's cross collateral.
            to_cross += iso_cash
            iso_cash = 0
        if to_cross:
            acct = get_account(ws, addr)
            put_account(ws, addr, msgspec.structs.replace(acct, cash=checked_i64(acct.cash + to_cross, "cash")))
    new_pos = msgspec.structs.replace(
        pos,
        size=checked_i64(new_size, "size"),
        cost=checked_i64(new_cost, "cost"),
        iso_cash=checked_i64(iso_cash, "isolated cash"),
        # A closed position has no liquidation cooldown left to remember.
        liq_cooldown_until_ms=0 if new_size == 0 else pos.liq_cooldown_until_ms,
    )
    put_position(ws, market, addr, new_pos, spec)
    _adjust_open_interest(ws, market, s, new_size)
    # Realized PnL is carried by the Fill or PositionTransfer event as an i64 (protocol §2.3).
    return checked_i64(realized, "realized PnL")
