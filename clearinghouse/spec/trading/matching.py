"""Matching an incoming order against the book (protocol §10.3).

Price-time priority comes from the key order of the book namespace: the
first key on the opposite side is the best price, earliest order. For each
resting order met:

* self-trade prevention: a resting order of the taker's own account is
  cancelled (reason ``self_trade``), never filled;
* reduce-only: a fill is capped at what reduces the position; a resting
  reduce-only order that can no longer reduce is cancelled;
* the resting side's margin is checked at match: the fill is tried inside a
  savepoint and undone, and the resting order cancelled (reason ``margin``),
  if the fill grew the maker's position or flipped it through zero and it no
  longer meets initial margin (protocol §10.3 step 8);
* a fill that would take one of the maker's own 64-bit fields out of range
  cancels the maker's order (reason ``invalid_amount``); one that would take the
  taker's fields, the market's open interest or the fee pool out of range
  rejects the taker (protocol §2.3);
* fills trade at the resting price; fees (rounded up) go to the fee pool;
  every fill is a last trade (mark price source b).

Matching handles orders only: a trader's order (``PlaceOrder``, ``MarketOrder``,
a fired trigger) or a market liquidation order (``Taker.is_liquidation``). The
waterfall's administered moves (backstop, ADL, deficit cover) never come here:
they are position transfers (``spec.trading.transfer``, protocol §10.9).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from clearinghouse.spec.constants import PPM
from clearinghouse.spec.errors import InsufficientMargin, InvalidAmount, InvalidMarginMode
from clearinghouse.spec.events import Fill, OrderStatus
from clearinghouse.spec.math.integers import ceil_div
from clearinghouse.spec.state.access import get_position
from clearinghouse.spec.state.accounts import add_cash, get_account
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import FEE_POOL, book_side_prefix, market_state_key, position_key
from clearinghouse.spec.state.records import Order
from clearinghouse.spec.state.working_state import WorkingState
from clearinghouse.spec.trading.book import remove_order
from clearinghouse.spec.trading.margin import meets_initial_after_increase
from clearinghouse.spec.trading.positions import check_open_interest, settle_fill
from clearinghouse.spec.waterfall.units import unit_value_for
from tx.messages import MarketSpec


class MakerBoundExceeded(InvalidAmount):
    """The resting side of a fill would leave a 64-bit bound (its cash, size, cost, isolated
    cash or realized PnL): matching cancels that maker's order instead of rejecting the taker
    (protocol §10.3 step 7). Only matching raises it; a position transfer's bound is an ordinary
    ``INVALID_AMOUNT`` (protocol §10.9)."""


@dataclass
class Taker:
    """The incoming order's side of matching: a trader's order, or a market liquidation order
    (``is_liquidation``: no check of the taker's own deficit or value, protocol §10.3, §12.3)."""

    owner: bytes
    oid: int
    is_buy: bool
    limit_price: int
    remaining: int
    reduce_only: bool
    is_liquidation: bool = False
    """A liquidation order sent by the waterfall (protocol §12.3), not a trader's own order."""
    taker_fee_ppm: int | None = None
    """Overrides the market's taker fee (liquidation orders pay none: no clearance fee)."""
    filled: int = 0
    increased: bool = False


def fee(notional: int, rate_ppm: int) -> int:
    """notional x rate, rounded up (charged to the trader; protocol §10.3)."""
    return ceil_div(notional * rate_ppm, PPM)


def crosses(taker: Taker, resting_price: int) -> bool:
    """Whether a resting price is inside the taker's limit (protocol §10.3)."""
    return resting_price <= taker.limit_price if taker.is_buy else resting_price >= taker.limit_price


def reducible(ws: WorkingState, market: int, owner: bytes, is_buy: bool) -> int:
    """How many lots a reduce-only order on this side may still fill (protocol §10.3)."""
    pos = ws.get(position_key(market, owner))
    size = pos.size if pos is not None else 0
    if is_buy and size < 0:
        return -size
    if not is_buy and size > 0:
        return size
    return 0


def cancel_resting(ctx: TxContext, market: int, key: bytes, order: Order, reason: str) -> None:
    """Take a resting order off the book and report why (``OrderStatus`` canceled; protocol §10.3)."""
    remove_order(ctx.ws, key, order)
    ctx.emit(
        OrderStatus(
            tx_index=ctx.tx_index,
            market=market,
            oid=order.oid,
            owner=order.owner,
            status="canceled",
            reason=reason,
            remaining=order.size,
        )
    )


def execute_fill(
    ctx: TxContext,
    market: int,
    spec: MarketSpec,
    taker: Taker,
    maker_owner: bytes,
    maker_oid: int,
    price: int,
    qty: int,
    *,
    maker_fee_ppm: int | None = None,
    taker_fee_ppm: int | None = None,
) -> Fill:
    """Move positions, cash and fees for one match, record the last trade price (mark source b);
    emit and return the Fill event (protocol §10.3).

    Raises:
        InvalidAmount: the taker's cash, size, cost, isolated cash or realized PnL, or the fee
            pool, would leave its 64-bit range (protocol §2.3).
        MakerBoundExceeded: the same for the maker's side (matching cancels that maker's order).
        LimitExceeded: the market's open interest would exceed its bound.
    """
    ws = ctx.ws
    notional = price * qty
    t_fee = fee(notional, spec.taker_fee_ppm if taker_fee_ppm is None else taker_fee_ppm)
    m_fee = fee(notional, spec.maker_fee_ppm if maker_fee_ppm is None else maker_fee_ppm)
    signed = qty if taker.is_buy else -qty
    t_pnl = settle_fill(ws, market, spec, taker.owner, signed, price, t_fee, ctx.emit)
    try:
        m_pnl = settle_fill(ws, market, spec, maker_owner, -signed, price, m_fee, ctx.emit)
    except InvalidAmount as exc:
        raise MakerBoundExceeded(exc.message) from None
    # Open interest is checked once both sides are applied (one side may add what the other removes).
    check_open_interest(ws, market)
    if t_fee + m_fee:
        add_cash(ws, FEE_POOL, t_fee + m_fee)
    # Every fill is a trade through the book, so a "last trade" (mark price source b); the
    # waterfall's transfers at administered prices are not fills (protocol §10.9).
    key = market_state_key(market)
    ws.put(key, msgspec.structs.replace(ws.get(key), last_trade_price=price))
    ev = Fill(
        tx_index=ctx.tx_index,
        market=market,
        price=price,
        size=qty,
        taker=taker.owner,
        maker=maker_owner,
        taker_oid=taker.oid,
        maker_oid=maker_oid,
        taker_is_buy=taker.is_buy,
        taker_fee=t_fee,
        maker_fee=m_fee,
        taker_realized_pnl=t_pnl,
        maker_realized_pnl=m_pnl,
        liquidation=taker.is_liquidation,
    )
    ctx.emit(ev)
    return ev


def has_unsettled_deficit(ws: WorkingState, owner: bytes, market: int) -> bool:
    """A unit with no position and a balance below zero: a deficit the waterfall still owes (protocol §10.3).

    The unit is the market's isolated position if it is isolated, else the cross account.

    Reopening on top of it would hand the deficit to the new position, so the
    owner cannot trade in that market (as taker or maker) until it is covered.
    """
    pos = get_position(ws, market, owner)
    if pos is not None and not pos.is_cross:
        return pos.size == 0 and pos.iso_cash < 0
    # Cross: the account has no open cross position anywhere and its cash is below zero.
    acct = get_account(ws, owner)
    if acct.cash >= 0:
        return False
    for m in acct.open_markets:
        p = ws.get(position_key(m, owner))
        if p is not None and p.is_cross and p.size != 0:
            return False
    return True


def _pushed_below_zero(ws: WorkingState, owner: bytes, market: int, value_before: int) -> bool:
    """Did the last fill leave the owner's unit below zero and worse than it was?"""
    after = unit_value_for(ws, owner, market)
    return after < 0 and after < value_before


def _position_size(ws: WorkingState, market: int, owner: bytes) -> int:
    pos = ws.get(position_key(market, owner))
    return pos.size if pos is not None else 0


def opens_exposure(before: int, after: int) -> bool:
    """Did a fill grow the position, or flip it through zero (protocol §10.3 steps 8 and 10)?

    A flip closes the old position and opens a new one on the other side, so it needs
    initial margin like any opening fill even when |size| shrinks (long 10 -> short 9).
    Closing exactly to zero is neither.
    """
    return abs(after) > abs(before) or (before != 0 and after != 0 and (after > 0) != (before > 0))


def match(ctx: TxContext, market: int, spec: MarketSpec, taker: Taker) -> None:
    """Fill ``taker`` against the opposite side until it is done or no longer crosses (protocol §10.3).

    Raises:
        InvalidMarginMode: the taker holds an unsettled deficit in this market.
        InsufficientMargin: a fill would leave the taker's unit below zero.
    """
    ws = ctx.ws
    side_prefix = book_side_prefix(market, not taker.is_buy)
    if not taker.is_liquidation and has_unsettled_deficit(ws, taker.owner, market):
        raise InvalidMarginMode(
            "this market's isolated position has an unsettled deficit; it cannot trade until the waterfall covers it"
        )
    while taker.remaining > 0:
        key = ws.index.first(side_prefix)
        if key is None:
            break
        maker = ws.get(key)
        if not crosses(taker, maker.price):
            break
        if maker.owner == taker.owner:
            cancel_resting(ctx, market, key, maker, "self_trade")
            continue
        if has_unsettled_deficit(ws, maker.owner, market):
            cancel_resting(ctx, market, key, maker, "unsettled_deficit")
            continue
        qty = min(taker.remaining, maker.size)
        if taker.reduce_only:
            qty = min(qty, reducible(ws, market, taker.owner, taker.is_buy))
            if qty == 0:
                break
        if maker.reduce_only:
            cap = reducible(ws, market, maker.owner, maker.is_buy)
            if cap == 0:
                cancel_resting(ctx, market, key, maker, "reduce_only")
                continue
            qty = min(qty, cap)
        maker_before = _position_size(ws, market, maker.owner)
        taker_before = _position_size(ws, market, taker.owner)
        maker_value_before = unit_value_for(ws, maker.owner, market)
        taker_value_before = 0 if taker.is_liquidation else unit_value_for(ws, taker.owner, market)
        mark = ws.savepoint()
        events_mark = len(ctx.events)
        try:
            execute_fill(
                ctx, market, spec, taker, maker.owner, maker.oid, maker.price, qty, taker_fee_ppm=taker.taker_fee_ppm
            )
        except MakerBoundExceeded:
            # The maker cannot take this fill (a 64-bit bound of its own): its order goes, the
            # taker goes on. Rejecting the taker instead would freeze the book at that order.
            ws.rollback_to(mark)
            del ctx.events[events_mark:]
            cancel_resting(ctx, market, key, maker, "invalid_amount")
            continue
        maker_after = _position_size(ws, market, maker.owner)
        maker_broke = _pushed_below_zero(ws, maker.owner, market, maker_value_before)
        if maker_broke or (
            opens_exposure(maker_before, maker_after) and not meets_initial_after_increase(ws, maker.owner, market)
        ):
            ws.rollback_to(mark)
            del ctx.events[events_mark:]
            cancel_resting(ctx, market, key, maker, "bankruptcy" if maker_broke else "margin")
            continue
        if not taker.is_liquidation and _pushed_below_zero(ws, taker.owner, market, taker_value_before):
            # A trader may not trade its own account (or isolated position) below zero: the
            # deficit would have no position left for the waterfall to act on. Liquidation
            # orders are exempt: their losses are what the waterfall then covers.
            raise InsufficientMargin("the fill would leave the account below zero")
        if opens_exposure(taker_before, _position_size(ws, market, taker.owner)):
            taker.increased = True
        rest = maker.size - qty
        if rest == 0:
            remove_order(ws, key, maker)
            ctx.emit(
                OrderStatus(
                    tx_index=ctx.tx_index,
                    market=market,
                    oid=maker.oid,
                    owner=maker.owner,
                    status="filled",
                    reason="",
                    remaining=0,
                )
            )
        else:
            ws.put(key, msgspec.structs.replace(maker, size=rest))
        taker.remaining -= qty
        taker.filled += qty
