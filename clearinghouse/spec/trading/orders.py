"""Order actions: limit (GTC, IOC, FOK, ALO), market, trigger, cancel, modify.

Validation happens before anything is written; matching then runs inside the
transaction, and any rule that can only be checked afterwards (fill-or-kill
filled completely, the taker still meeting initial margin) rejects the whole
transaction, which the journal undoes.
"""

from __future__ import annotations

from clearinghouse.spec.constants import DEFAULT_LEVERAGE
from clearinghouse.spec.errors import (
    FOKNotFilled,
    InsufficientMargin,
    InvalidMarginMode,
    ReduceOnlyViolation,
    UnknownMarket,
    WouldTakeALO,
)
from clearinghouse.spec.events import OrderStatus
from clearinghouse.spec.math.integers import ceil_div
from clearinghouse.spec.state.access import get_chain, get_market_spec, get_market_state, get_position
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import (
    TRIGGER_ABOVE,
    TRIGGER_BELOW,
    book_side_prefix,
    order_key,
    trigger_key,
)
from clearinghouse.spec.state.records import Order, Trigger
from clearinghouse.spec.state.working_state import WorkingState
from clearinghouse.spec.trading.book import (
    check_cloid_free,
    find_by_cloid,
    find_order,
    next_oid,
    remove_order,
    store_order,
)
from clearinghouse.spec.trading.margin import meets_cross_initial, meets_initial_after_increase
from clearinghouse.spec.trading.matching import Taker, has_unsettled_deficit, match, reducible
from clearinghouse.spec.trading.order_rules import (
    check_notional,
    check_price,
    check_price_band,
    check_size,
    slippage_limit,
)
from tx.actions import (
    TIF_ALO,
    TIF_FOK,
    TIF_IOC,
    Cancel,
    CancelByCloid,
    MarketOrder,
    Modify,
    PlaceOrder,
    TriggerOrder,
)
from tx.messages import MarketSpec


def market_spec(ws: WorkingState, market: int) -> MarketSpec:
    """The spec of ``market``, checked against the chain's market count (protocol §10.2).

    Raises:
        UnknownMarket: ``market`` is not below ``Chain.market_count``.
    """
    chain = get_chain(ws)
    if market >= chain.market_count:
        raise UnknownMarket(f"no market {market}")
    return get_market_spec(ws, market)


def status(ctx: TxContext, market: int, oid: int, owner: bytes, st: str, reason: str, remaining: int) -> None:
    """Emit an ``OrderStatus`` event for one order (protocol §10.2)."""
    ctx.emit(
        OrderStatus(
            tx_index=ctx.tx_index, market=market, oid=oid, owner=owner, status=st, reason=reason, remaining=remaining
        )
    )


def check_no_unsettled_deficit(ws: WorkingState, owner: bytes, market: int) -> None:
    """No new order (resting, ALO or trigger) while the unit still owes an unsettled deficit (protocol §10.2).

    Raises:
        InvalidMarginMode: the owner's unit in ``market`` holds a deficit the waterfall has not settled.
    """
    if has_unsettled_deficit(ws, owner, market):
        raise InvalidMarginMode(
            "this account has an unsettled deficit in that market; it cannot place orders until it is covered"
        )


def resting_margin_ok(ws: WorkingState, owner: bytes, market: int, is_buy: bool, size: int, price: int) -> bool:
    """Initial margin at placement for a resting order that would grow the position (protocol §10.2).

    The order's notional at its limit price, divided by the position's leverage
    (rounded up), must be covered on top of the account's current initial margin.
    """
    pos = get_position(ws, market, owner)
    cur = pos.size if pos is not None else 0
    growing = size if (cur == 0 or (cur > 0) == is_buy) else max(0, size - abs(cur))
    if growing == 0:
        return True
    spec = get_market_spec(ws, market)
    leverage = pos.leverage if pos is not None else min(DEFAULT_LEVERAGE, spec.max_leverage)
    return meets_cross_initial(ws, owner, ceil_div(growing * price, leverage))


def submit(
    ctx: TxContext,
    market: int,
    *,
    is_buy: bool,
    price: int,
    size: int,
    tif: int,
    reduce_only: bool,
    cloid: int,
) -> int:
    """Validate, match and (for GTC/ALO) rest an order of ``ctx.account``; returns its oid (protocol §10.2).

    Raises:
        ReduceOnlyViolation: reduce-only with nothing to reduce.
        WouldTakeALO: a post-only order would cross the book.
        FOKNotFilled: a fill-or-kill order did not fill completely.
        InsufficientMargin: the fills leave the account below initial margin, or the rest lacks margin.
        InvalidMarginMode, DuplicateCloid, LimitExceeded, InvalidAmount: from the checks and fills it runs.
    """
    ws = ctx.ws
    spec = market_spec(ws, market)
    check_size(size)
    check_price(spec, price)
    check_price_band(price, get_market_state(ws, market).mark_price)
    check_notional(spec, price, size, reduce_only=reduce_only)
    owner = ctx.account
    check_cloid_free(ws, owner, cloid)
    check_no_unsettled_deficit(ws, owner, market)
    if reduce_only and reducible(ws, market, owner, is_buy) == 0:
        raise ReduceOnlyViolation("reduce-only order but no opposite position to reduce")
    if tif == TIF_ALO:
        best = ws.index.first(book_side_prefix(market, not is_buy))
        if best is not None:
            best_price = ws.get(best).price
            if (is_buy and best_price <= price) or (not is_buy and best_price >= price):
                raise WouldTakeALO(f"post-only order at {price} would take the resting order at {best_price}")
    oid = next_oid(ws)
    taker = Taker(owner=owner, oid=oid, is_buy=is_buy, limit_price=price, remaining=size, reduce_only=reduce_only)
    if tif != TIF_ALO:
        match(ctx, market, spec, taker)
    if tif == TIF_FOK and taker.remaining > 0:
        raise FOKNotFilled(f"fill-or-kill order filled {taker.filled} of {size} lots")
    if taker.increased and not meets_initial_after_increase(ws, owner, market):
        raise InsufficientMargin("the fills would leave the account below initial margin")
    if taker.remaining == 0:
        status(ctx, market, oid, owner, "filled", "", 0)
        return oid
    if tif in (TIF_IOC, TIF_FOK):
        status(
            ctx,
            market,
            oid,
            owner,
            "canceled",
            "ioc_unfilled" if taker.filled == 0 else "ioc_remainder",
            taker.remaining,
        )
        return oid
    remaining = taker.remaining
    if reduce_only:
        remaining = min(remaining, reducible(ws, market, owner, is_buy))
        if remaining == 0:
            status(ctx, market, oid, owner, "canceled", "reduce_only", taker.remaining)
            return oid
    if not resting_margin_ok(ws, owner, market, is_buy, remaining, price):
        raise InsufficientMargin("not enough margin for the order to rest")
    order = Order(
        oid=oid,
        owner=owner,
        is_buy=is_buy,
        price=price,
        size=remaining,
        orig_size=size,
        tif=tif,
        reduce_only=reduce_only,
        cloid=cloid,
        time_ms=ctx.time_ms,
    )
    store_order(ws, order_key(market, is_buy, price, oid), order)
    status(ctx, market, oid, owner, "resting", "", remaining)
    return oid


def apply_place_order(ctx: TxContext, action: PlaceOrder) -> None:
    """PlaceOrder (tag 10): a limit order with its time in force (protocol §9.4, §10.2).

    Raises:
        InvalidTransaction: any rejection of ``submit``.
    """
    submit(
        ctx,
        action.market,
        is_buy=action.is_buy,
        price=action.price,
        size=action.size,
        tif=action.tif,
        reduce_only=action.reduce_only,
        cloid=action.cloid,
    )


def apply_market_order(ctx: TxContext, action: MarketOrder) -> None:
    """An IOC at the mark moved by the slippage bound; the limit needs no tick (it never rests; protocol §10.2).

    Raises:
        UnknownMarket, InvalidSize: a bad market or size.
        ReduceOnlyViolation: reduce-only with nothing to reduce.
        InsufficientMargin: the fills leave the account below initial margin.
    """
    ws = ctx.ws
    spec = market_spec(ws, action.market)
    limit = slippage_limit(get_market_state(ws, action.market).mark_price, action.is_buy, action.slippage_bps)
    check_size(action.size)
    check_notional(spec, limit, action.size, reduce_only=action.reduce_only)
    check_cloid_free(ws, ctx.account, action.cloid)
    if action.reduce_only and reducible(ws, action.market, ctx.account, action.is_buy) == 0:
        raise ReduceOnlyViolation("reduce-only order but no opposite position to reduce")
    oid = next_oid(ws)
    taker = Taker(
        owner=ctx.account,
        oid=oid,
        is_buy=action.is_buy,
        limit_price=limit,
        remaining=action.size,
        reduce_only=action.reduce_only,
    )
    match(ctx, action.market, spec, taker)
    if taker.increased and not meets_initial_after_increase(ws, ctx.account, action.market):
        raise InsufficientMargin("the fills would leave the account below initial margin")
    if taker.remaining == 0:
        status(ctx, action.market, oid, ctx.account, "filled", "", 0)
    else:
        status(
            ctx,
            action.market,
            oid,
            ctx.account,
            "canceled",
            "ioc_unfilled" if taker.filled == 0 else "ioc_remainder",
            taker.remaining,
        )


def trigger_direction(is_buy: bool, is_take_profit: bool) -> int:
    """Sell TP and buy SL fire when the mark rises to the trigger; sell SL and buy TP when it falls (protocol §10.2)."""
    return TRIGGER_ABOVE if is_take_profit != is_buy else TRIGGER_BELOW


def apply_trigger_order(ctx: TxContext, action: TriggerOrder) -> None:
    """TriggerOrder (tag 12): store a stop or take-profit order to fire when the mark crosses it (protocol §9.4, §10.2).

    Raises:
        UnknownMarket, InvalidSize, InvalidPrice, BelowMinNotional, DuplicateCloid, LimitExceeded,
        InvalidMarginMode: the checks placement applies (``check_no_unsettled_deficit`` included).
    """
    ws = ctx.ws
    spec = market_spec(ws, action.market)
    check_size(action.size)
    check_price(spec, action.trigger_price)
    check_price_band(action.trigger_price, get_market_state(ws, action.market).mark_price)
    if action.limit_price:
        check_price(spec, action.limit_price)
    check_notional(spec, action.trigger_price, action.size, reduce_only=action.reduce_only)
    check_cloid_free(ws, ctx.account, action.cloid)
    check_no_unsettled_deficit(ws, ctx.account, action.market)
    oid = next_oid(ws)
    direction = trigger_direction(action.is_buy, action.is_take_profit)
    trig = Trigger(
        oid=oid,
        owner=ctx.account,
        is_buy=action.is_buy,
        size=action.size,
        trigger_price=action.trigger_price,
        is_take_profit=action.is_take_profit,
        limit_price=action.limit_price,
        reduce_only=action.reduce_only,
        cloid=action.cloid,
        time_ms=ctx.time_ms,
    )
    store_order(ws, trigger_key(action.market, direction, action.trigger_price, oid), trig)
    status(ctx, action.market, oid, ctx.account, "trigger_pending", "", action.size)


def apply_cancel(ctx: TxContext, action: Cancel) -> None:
    """Cancel (tag 13): remove one of the account's open orders by order id (protocol §9.4, §10.2).

    Raises:
        UnknownMarket: no such market.
        OrderNotFound: no open order with that id of this account in that market.
    """
    market_spec(ctx.ws, action.market)
    key, order = find_order(ctx.ws, ctx.account, action.market, action.oid)
    remove_order(ctx.ws, key, order)
    status(ctx, action.market, order.oid, order.owner, "canceled", "user", order.size)


def apply_cancel_by_cloid(ctx: TxContext, action: CancelByCloid) -> None:
    """CancelByCloid (tag 14): remove one of the account's open orders by client id (protocol §9.4, §10.2).

    Raises:
        UnknownMarket: no such market.
        OrderNotFound: no open order with that client id of this account in that market.
    """
    market_spec(ctx.ws, action.market)
    key, order = find_by_cloid(ctx.ws, ctx.account, action.market, action.cloid)
    remove_order(ctx.ws, key, order)
    status(ctx, action.market, order.oid, order.owner, "canceled", "user", order.size)


def apply_modify(ctx: TxContext, action: Modify) -> None:
    """Cancel the resting order and place its replacement (same side, TIF, reduce-only, cloid; protocol §10.2).

    Raises:
        OrderNotFound: no such open order of this account, or it is a trigger order.
        InvalidTransaction: any rejection of the replacement order (``submit``).
    """
    market_spec(ctx.ws, action.market)
    key, order = find_order(ctx.ws, ctx.account, action.market, action.oid)
    if not isinstance(order, Order):
        from clearinghouse.spec.errors import OrderNotFound

        raise OrderNotFound("only resting limit orders can be modified")
    remove_order(ctx.ws, key, order)
    status(ctx, action.market, order.oid, order.owner, "canceled", "modified", order.size)
    submit(
        ctx,
        action.market,
        is_buy=order.is_buy,
        price=action.price,
        size=action.size,
        tif=order.tif,
        reduce_only=order.reduce_only,
        cloid=order.cloid,
    )
