"""TP/SL trigger orders: fired at end of block when the new mark crosses them.

Runs after prices (order 20). For each market in ascending index, triggers
that fire when the mark rises (keys ascending by price) fire while their price
is <= mark; those that fire when it falls (keys descending by price) while
their price is >= mark; within a direction in key order (price, then order
id). A fired trigger becomes an IOC order (at its limit price, or a market
order with a 10% slippage bound) for its owner; if that order is rejected
(margin, nothing to reduce) the trigger is cancelled with the reason, and
nothing else changes: its fills are undone and not reported.
"""

from __future__ import annotations

from clearinghouse.spec.constants import MARKET_TRIGGER_SLIPPAGE_BPS, NO_TX
from clearinghouse.spec.events import BaseEvent, OrderStatus
from clearinghouse.spec.state.access import get_chain, get_market_state, get_trigger
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import TRIGGER_ABOVE, TRIGGER_BELOW, trigger_prefix
from clearinghouse.spec.state.records import Trigger
from clearinghouse.spec.state.working_state import WorkingState, atomically
from clearinghouse.spec.trading.book import remove_order
from clearinghouse.spec.trading.margin import meets_initial_after_increase
from clearinghouse.spec.trading.matching import Taker, match, reducible
from clearinghouse.spec.trading.order_rules import slippage_limit
from clearinghouse.spec.trading.orders import market_spec


def due_triggers(ws: WorkingState, market: int, mark: int) -> list[bytes]:
    """Keys of the triggers the mark fires, in firing order (protocol §10.8)."""
    due = []
    for key in ws.index.walk(trigger_prefix(market, TRIGGER_ABOVE)):
        if ws.get(key).trigger_price > mark:
            break
        due.append(key)
    for key in ws.index.walk(trigger_prefix(market, TRIGGER_BELOW)):
        if ws.get(key).trigger_price < mark:
            break
        due.append(key)
    return due


def _emit_status(ctx: TxContext, market: int, trig: Trigger, status: str, reason: str, remaining: int) -> None:
    """The trigger's ``OrderStatus`` event (end-of-block work, so no transaction index), protocol §10.8."""
    ctx.emit(
        OrderStatus(
            tx_index=NO_TX,
            market=market,
            oid=trig.oid,
            owner=trig.owner,
            status=status,
            reason=reason,
            remaining=remaining,
        )
    )


def fire(ctx: TxContext, market: int, key: bytes, trig: Trigger, mark: int) -> None:
    """Fire one due trigger: remove it and send its order to the book (protocol §10.8).

    A rejection of the fired order (margin, reduce-only, unsettled deficit) cancels it with a reason;
    it never raises out of the end-of-block step.
    """
    ws = ctx.ws
    remove_order(ws, key, trig)
    _emit_status(ctx, market, trig, "triggered", "", trig.size)
    spec = market_spec(ws, market)
    limit = trig.limit_price or slippage_limit(mark, trig.is_buy, MARKET_TRIGGER_SLIPPAGE_BPS)
    if trig.reduce_only and reducible(ws, market, trig.owner, trig.is_buy) == 0:
        _emit_status(ctx, market, trig, "canceled", "reduce_only", trig.size)
        return
    taker = Taker(
        owner=trig.owner,
        oid=trig.oid,
        is_buy=trig.is_buy,
        limit_price=limit,
        remaining=trig.size,
        reduce_only=trig.reduce_only,
    )
    mark_sp = ws.savepoint()
    ev_mark = len(ctx.events)
    match(ctx, market, spec, taker)
    if taker.increased and not meets_initial_after_increase(ws, trig.owner, market):
        ws.rollback_to(mark_sp)
        del ctx.events[ev_mark:]
        _emit_status(ctx, market, trig, "canceled", "margin", trig.size)
        return
    st, reason = (
        ("filled", "")
        if taker.remaining == 0
        else ("canceled", "ioc_unfilled" if taker.filled == 0 else "ioc_remainder")
    )
    _emit_status(ctx, market, trig, st, reason, taker.remaining)


def run_triggers(ws: WorkingState, time_ms: int) -> list[BaseEvent]:
    """End-of-block step 20: fire every trigger the mark has crossed, market by market (protocol §10.8)."""
    chain = get_chain(ws)
    events: list[BaseEvent] = []
    for market in range(chain.market_count):
        mark = get_market_state(ws, market).mark_price
        for key in due_triggers(ws, market, mark):
            trig = get_trigger(ws, key)
            if trig is None:
                continue
            ctx = TxContext(
                ws=ws,
                chain=chain,
                tx_index=NO_TX,
                signer=trig.owner,
                account=trig.owner,
                time_ms=time_ms,
                events=events,
            )
            error = atomically(ws, events, lambda: fire(ctx, market, key, trig, mark))
            if error is not None:
                # The undone fills are not reported, but the trigger stays cancelled.
                remove_order(ws, key, trig)
                events.append(
                    OrderStatus(
                        tx_index=NO_TX,
                        market=market,
                        oid=trig.oid,
                        owner=trig.owner,
                        status="canceled",
                        reason=error.code.lower(),
                        remaining=trig.size,
                    )
                )
    return events
