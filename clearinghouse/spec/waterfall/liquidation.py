"""Liquidation steps 1-2 (protocol §12.3-§12.4): trigger at mark, market liquidation into the book.

For every unit (margin_units order) below maintenance margin at the mark:
its resting orders in the affected markets are cancelled; then, for each of
its positions in ascending market order, a reduce-only IOC liquidation order
goes into the book for the whole position, or 20% of it (rounded up to a lot)
above 100,000 USDC notional outside the 30 s cooldown. The order's limit is
the tighter of two bounds: never more than 10% from the mark, and (policies
``hyperliquid`` and ``bitmex``) never a price whose deficit the insurance fund
could not pay. The liquidated side pays
no fee. Whatever collateral remains stays with the trader. The fund then
covers any deficit (step 3) and, if needed, the backstop takes over (step 4).
"""

from __future__ import annotations

import msgspec

from clearinghouse.spec.constants import LIQUIDATION_COOLDOWN_MS, LIQUIDATION_SLIPPAGE_BPS, NO_TX
from clearinghouse.spec.events import BaseEvent
from clearinghouse.spec.math.liquidation import (
    Exposure,
    bankruptcy_prices,
    below_backstop,
    fund_bounded_limit,
    is_liquidatable,
    liquidation_slice,
    round_bankruptcy_price,
    slippage_bound,
)
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import INSURANCE_FUND, liq_ref_key, market_spec_key, position_key
from clearinghouse.spec.state.records import LiquidationRef
from clearinghouse.spec.state.working_state import WorkingState, atomically
from clearinghouse.spec.trading.book import next_oid
from clearinghouse.spec.trading.margin import PositionAtMark
from clearinghouse.spec.trading.matching import Taker, cancel_resting, match
from clearinghouse.spec.waterfall.backstop import backstop_unit
from clearinghouse.spec.waterfall.events import LiquidationTriggered, MarketLiquidation, WaterfallSkipped
from clearinghouse.spec.waterfall.insurance_fund import cover_deficit, fund_available
from clearinghouse.spec.waterfall.policies import Policy, policy_of
from clearinghouse.spec.waterfall.unit_index import margin_index
from clearinghouse.spec.waterfall.units import Unit, unit_health


def cancel_orders_of(ctx: TxContext, market: int, owner: bytes) -> None:
    """Cancel the owner's resting orders in ``market`` (they would self-trade or hold margin).

    Bids then asks, each in key order (protocol §12.3), found through the per-owner order
    index (§7.1): O(the owner's orders), whatever the size of the book.
    """
    ws = ctx.ws
    for key in ws.index.owner_orders(owner, market):
        cancel_resting(ctx, market, key, ws.get(key), "liquidation")


def liquidation_limit(policy: Policy, is_long: bool, value: int, qty: int, mark: int, fund: int) -> int:
    """The limit price of a liquidation order (protocol §12.4).

    The slippage bound, tightened by the insurance-fund bound when the policy has one.
    """
    slip = slippage_bound(is_long, mark, LIQUIDATION_SLIPPAGE_BPS)
    if not policy.fund_bounded_liquidation:
        return slip
    bound = fund_bounded_limit(is_long, value, qty, mark, fund)
    # The tighter of the two: a long may not sell below either bound, a short not buy above.
    return max(slip, bound) if is_long else min(slip, bound)


def record_reference_prices(ws: WorkingState, unit: Unit, value: int, positions: list[PositionAtMark]) -> None:
    """Remember each position's bankruptcy price at trigger time for the ADL step
    (policy ``seed`` closes winners at it). The ADL step deletes these records at the
    end of the block unless the unit is still below zero (its deficit is retried).

    See protocol §12.4.
    """
    exact = bankruptcy_prices(value, [Exposure(p.size, mark, mm) for _m, p, mark, mm in positions])
    for (m, p, _mark, _mm), bp in zip(positions, exact):
        ws.put(
            liq_ref_key(unit.account, unit.market, m),
            LiquidationRef(
                market=m, was_long=p.size > 0, reference_price=round_bankruptcy_price(bp, p.size), size=abs(p.size)
            ),
        )


def liquidate_unit(ctx: TxContext, unit: Unit, policy: Policy) -> None:
    """Steps 1-2 for one unit (protocol §12.3-§12.4).

    Record the trigger, cancel the unit's orders and send its positions to the book.
    """
    ws = ctx.ws
    health = unit_health(ws, unit)
    ctx.emit(
        LiquidationTriggered(
            account=unit.account,
            market=unit.market,
            value=health.value,
            maintenance_margin=health.maintenance,
            positions=health.snapshots(),
            method="market",
        )
    )
    record_reference_prices(ws, unit, health.value, health.positions)
    absorbed = True
    for market, _pos, _mark, _mm in health.positions:
        cancel_orders_of(ctx, market, unit.account)
    for market, _p, _m, _mm in health.positions:
        pos = ws.get(position_key(market, unit.account))
        if pos is None or pos.size == 0:
            continue
        now = unit_health(ws, unit)
        mark = next(mk for m, _p2, mk, _ in now.positions if m == market)
        size_abs = abs(pos.size)
        in_cooldown = pos.liq_cooldown_until_ms > ctx.time_ms
        qty, partial = liquidation_slice(size_abs, size_abs * mark, in_cooldown or not policy.partial_liquidation)
        is_long = pos.size > 0
        limit = liquidation_limit(policy, is_long, now.value, qty, mark, fund_available(ws))
        spec = ws.get(market_spec_key(market))
        taker = Taker(
            owner=unit.account,
            oid=next_oid(ws),
            is_buy=not is_long,
            limit_price=limit,
            remaining=qty,
            reduce_only=True,
            is_liquidation=True,
            taker_fee_ppm=0,
        )
        match(ctx, market, spec, taker)
        cooldown = 0
        if partial and taker.filled:
            after = ws.get(position_key(market, unit.account))
            if after is not None and after.size != 0:
                cooldown = ctx.time_ms + LIQUIDATION_COOLDOWN_MS
                ws.put(
                    position_key(market, unit.account), msgspec.structs.replace(after, liq_cooldown_until_ms=cooldown)
                )
        if taker.remaining:
            absorbed = False
        ctx.emit(
            MarketLiquidation(
                account=unit.account,
                market=market,
                unit=unit.market,
                side_is_buy=not is_long,
                ordered=qty,
                filled=taker.filled,
                limit_price=limit,
                partial=partial,
                cooldown_until_ms=cooldown,
            )
        )
    after = unit_health(ws, unit)
    if after.value < 0:
        ctx.emit(cover_deficit(ws, unit, -after.value, all_or_nothing=policy.fund_all_or_nothing))
        after = unit_health(ws, unit)
    if (
        policy.backstop
        and after.positions
        and is_liquidatable(after.value, after.maintenance)
        and (below_backstop(after.value, after.maintenance) or not absorbed)
    ):
        backstop_unit(
            ctx, unit, "below_two_thirds" if below_backstop(after.value, after.maintenance) else "book_could_not_absorb"
        )


def run_liquidations(ws: WorkingState, time_ms: int) -> list[BaseEvent]:
    """End-of-block step 40: every liquidatable unit, in unit order (protocol §12.3).

    The units in state as the step begins (``units_in_state``) are walked in ascending order and
    each is liquidated if it is liquidatable when its turn comes. The liquidation index
    (``unit_index.margin_index``) lets the walk pass over units that cannot be: those it knows
    healthy at these marks and that nothing touched since; the units visited, their order and
    everything they emit are those of the full walk.
    """
    from clearinghouse.spec.state.keys import CHAIN_KEY

    chain = ws.get(CHAIN_KEY)
    events: list[BaseEvent] = []
    index = margin_index(ws)
    for unit in index.visit(index.watched, index.is_member):
        if unit.account == INSURANCE_FUND:
            continue  # the fund is never liquidated: if it is underwater, ADL closes its positions
        health = unit_health(ws, unit)
        if not health.positions or not is_liquidatable(health.value, health.maintenance):
            continue
        ctx = TxContext(
            ws=ws,
            chain=chain,
            tx_index=NO_TX,
            signer=unit.account,
            account=unit.account,
            time_ms=time_ms,
            events=events,
        )
        error = atomically(ws, events, lambda: liquidate_unit(ctx, unit, policy_of(chain.policy)))
        if error is not None:
            # A bound was hit (e.g. a 64-bit balance): the unit is undone; say so and go on.
            events.append(
                WaterfallSkipped(
                    account=unit.account, unit=unit.market, step="liquidation", code=error.code, message=error.message
                )
            )
    return events
