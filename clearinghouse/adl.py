"""Auto-deleveraging (protocol §12.7-§12.10): closing underwater units against ranked winners.

End-of-block step 50, after the liquidation waterfall. Every unit whose value
is negative, in unit order, the insurance fund's cross side last (backstops
and deficit-cover slices can leave it below zero, so it goes after them):

* with open positions: each position, in ascending market order, is closed
  against the opposite side's queue (``adl_ranking``), walking it: whole
  positions, then one partial, at the unit's bankruptcy price for that
  position (value spread over positions by maintenance margin, rounded in the
  unit's favour). No fees. The unit ends at >= 0; the rounding residue goes to
  the insurance fund so it ends at exactly zero. If the queue cannot match the
  whole size, what is left waits for the next block (``AdlShortfall``).
* with no positions (a deficit left by fills beyond bankruptcy that the fund
  could not pay), policy ``seed`` only: the article's deficit-cover rule walks
  the queue of the liquidated position's market and opposite side; from each
  winner it closes the fewest whole lots whose realized profit at the
  reference (bankruptcy) price covers what remains, against the insurance
  fund, which takes the slice over at that price; the covered amount moves
  from the winner's unit to the underwater unit. A deficit not covered keeps
  its LiquidationRef and is tried again next block.

A deficit nothing can close (no position left, or a short whose deficit
exceeds its notional so that even a price of one unit leaves it below zero)
is reported with an ``AdlShortfall`` of size 0.

No counterparty is made insolvent: closing at the bankruptcy (or reference)
price instead of the mark costs a counterparty |price - mark| per lot, so
it gives at most value // that lots (solvency, protocol §1.1); the queue walk
goes on to the next entry. Units without open positions are never
counterparties: no one without a position loses anything to ADL.
"""

from __future__ import annotations

from typing import Any

from .accounts import add_cash
from .adl_ranking import Candidate, Ranked, rank_candidates, ranking_hash
from .book import next_oid
from .context import TxContext
from .events import NO_TX
from .insurance_fund import credit_unit, sweep_to_fund
from .keys import CHAIN_KEY, INSURANCE_FUND, NS_LIQ_REF, market_spec_key, position_key, position_prefix
from .liquidation_math import bankruptcy_prices, round_bankruptcy_price, smallest_cover_qty
from .margin_units import Unit, unit_health, unit_of_position, units_in_state
from .matching import Taker, execute_fill
from .policies import policy_of
from .waterfall_events import WaterfallSkipped, CROSS, AdlQueue, AdlShortfall, AdlStep, DeficitCover, QueueEntry
from .working_state import WorkingState, atomically

QUEUE_EVIDENCE_TOP = 10
"""How many leading queue entries an AdlQueue event lists (the hash covers all)."""


def build_queue(ws: WorkingState, market: int, winners_long: bool, exclude: bytes, ranking: str) -> list[Ranked]:
    """The ranked queue of ``market``'s positions on one side (longs if ``winners_long``)."""
    candidates = []
    health_cache: dict[Unit, Any] = {}
    for key in ws.index.iter_prefix(position_prefix(market)):
        pos = ws.get(key)
        account = key[5:]
        if account == exclude or pos.size == 0 or (pos.size > 0) != winners_long:
            continue
        unit = unit_of_position(account, market, pos)
        health = health_cache.get(unit)
        if health is None:
            health = health_cache[unit] = unit_health(ws, unit)
        mm = next(mm for m, _p, _mk, mm in health.positions if m == market)
        mark = next(mk for m, _p, mk, _mm in health.positions if m == market)
        candidates.append(Candidate(account=account, unit=unit.market, size=pos.size, cost=pos.cost, mark=mark, value=health.value, maintenance=mm, unit_maintenance=health.maintenance))
    return rank_candidates(candidates, ranking)


def queue_entry(r: Ranked) -> QueueEntry:
    c = r.candidate
    return QueueEntry(account=c.account, unit=c.unit, size=c.size, index_num=str(r.index.numerator), index_den=str(r.index.denominator))


def neighbours(queue: list[Ranked], i: int) -> tuple[list[QueueEntry], list[QueueEntry]]:
    above = [queue_entry(queue[i - 1])] if i > 0 else []
    below = [queue_entry(queue[i + 1])] if i + 1 < len(queue) else []
    return above, below


def queue_event(market: int, unit: Unit, size: int, price: int, policy: str, queue: list[Ranked]) -> AdlQueue:
    return AdlQueue(
        market=market, underwater=unit.account, underwater_unit=unit.market, underwater_size=size, bankruptcy_price=price,
        policy=policy, queue_length=len(queue), ranking_hash=ranking_hash(queue), top=[queue_entry(r) for r in queue[:QUEUE_EVIDENCE_TOP]],
    )


def affordable(c: Candidate, price: int) -> int:
    """Lots of ``c`` that may close at ``price`` without taking its unit below zero.

    Closing at ``price`` rather than the mark changes the unit's value by
    (price - mark) per lot for a long, (mark - price) for a short; where that
    is a loss, at most value // loss lots (floor: the unit stays >= 0).
    """
    loss = c.mark - price if c.size > 0 else price - c.mark
    return abs(c.size) if loss <= 0 else min(abs(c.size), c.value // loss)


def deleverage_positions(ctx: TxContext, unit: Unit, policy: str) -> None:
    ws = ctx.ws
    health = unit_health(ws, unit)
    exact = bankruptcy_prices(health.value, [(p.size, mark, mm) for _m, p, mark, mm in health.positions])
    moved = 0  # the unit's value change from its ADL fills: sum of qty x (price - mark) per closed side
    for (market, pos, mark, _mm), bp in zip(health.positions, exact):
        price = round_bankruptcy_price(bp, pos.size)
        queue = build_queue(ws, market, winners_long=pos.size < 0, exclude=unit.account, ranking=policy_of(policy).ranking)
        ctx.emit(queue_event(market, unit, pos.size, price, policy, queue))
        spec = ws.get(market_spec_key(market))
        remaining = abs(pos.size)
        for i, r in enumerate(queue):
            if remaining == 0:
                break
            c = r.candidate
            qty = min(remaining, affordable(c, price))
            if qty == 0:
                continue
            taker = Taker(owner=unit.account, oid=next_oid(ws), is_buy=pos.size < 0, limit_price=price, remaining=qty, reduce_only=True, kind="adl")
            fill = execute_fill(ctx, market, spec, taker, c.account, 0, price, qty, maker_fee_ppm=0, taker_fee_ppm=0)
            remaining -= qty
            moved += qty * (price - mark) if pos.size > 0 else qty * (mark - price)
            above, below = neighbours(queue, i)
            ctx.emit(AdlStep(
                market=market, underwater=unit.account, counterparty=c.account, counterparty_unit=c.unit, rank=r.rank,
                index_num=str(r.index.numerator), index_den=str(r.index.denominator), size=qty, price=price,
                realized_pnl=fill.maker_realized_pnl, remaining_after=remaining if pos.size > 0 else -remaining,
                neighbour_above=above, neighbour_below=below,
            ))
        if remaining:
            ctx.emit(AdlShortfall(market=market, underwater=unit.account, unmatched=remaining if pos.size > 0 else -remaining))
    after = unit_health(ws, unit)
    residue = health.value + moved
    if not after.positions and residue > 0 and unit.account != INSURANCE_FUND:
        # Rounding in the unit's favour left it a little above zero: that residue goes to the fund.
        # It sits in cross cash either way: a cross unit's own cash, or, for an isolated unit,
        # the owner's cross cash, where settle_fill returned the closed position's bucket.
        sweep_to_fund(ws, Unit(unit.account, CROSS), residue)
    elif not after.positions and residue < 0:
        # Every position closed, still below zero: a short's bankruptcy price was below one price
        # unit (its deficit exceeded its notional). Nothing is left to close.
        ctx.emit(AdlShortfall(market=unit.market, underwater=unit.account, unmatched=0))


def take_from_unit(ws: WorkingState, account: bytes, unit_market: int, amount: int) -> None:
    """Debit a winner's unit: its isolated bucket while the position is open, else cross cash."""
    if unit_market != CROSS:
        pos = ws.get(position_key(unit_market, account))
        if pos is not None and pos.size != 0:
            credit_unit(ws, Unit(account, unit_market), -amount)
            return
    add_cash(ws, account, -amount)


def cover_with_winners(ctx: TxContext, unit: Unit, policy: str) -> None:
    """Policy ``seed``: cover a position-less unit's deficit from ranked winners' slices."""
    ws = ctx.ws
    refs = [ws.get(k) for k in ws.index.iter_prefix(NS_LIQ_REF + unit.account + unit.market.to_bytes(4, "big"))]
    deficit = -unit_health(ws, unit).value
    if not refs:
        ctx.emit(AdlShortfall(market=unit.market, underwater=unit.account, unmatched=0))
        return
    # The deficit is attributed to the liquidated position with the largest reference notional.
    ref = max(refs, key=lambda r: (r.size * r.reference_price, -r.market))
    queue = build_queue(ws, ref.market, winners_long=not ref.was_long, exclude=unit.account, ranking=policy_of(policy).ranking)
    ctx.emit(queue_event(ref.market, unit, 0, ref.reference_price, policy, queue))
    spec = ws.get(market_spec_key(ref.market))
    for r in queue:
        if deficit <= 0:
            break
        c = r.candidate
        qty = smallest_cover_qty(c.size, c.cost, ref.reference_price, deficit)
        if qty is None:
            continue  # no profit at the reference price: nothing to cover with
        # The winner's unit value after closing at the reference price instead of the mark and
        # paying what it covers must stay >= 0: cap the slice (affordable) and the amount (room).
        qty = min(qty, affordable(c, ref.reference_price))
        per_lot = ref.reference_price - c.mark if c.size > 0 else c.mark - ref.reference_price
        room = c.value + qty * per_lot
        if qty == 0 or room <= 0:
            continue
        taker = Taker(owner=c.account, oid=next_oid(ws), is_buy=c.size < 0, limit_price=ref.reference_price, remaining=qty, reduce_only=True, kind="deficit_cover")
        fill = execute_fill(ctx, ref.market, spec, taker, INSURANCE_FUND, 0, ref.reference_price, qty, maker_fee_ppm=0, taker_fee_ppm=0)
        covered = max(0, min(fill.taker_realized_pnl, deficit, room))
        take_from_unit(ws, c.account, c.unit, covered)
        credit_unit(ws, unit, covered)
        deficit -= covered
        ctx.emit(DeficitCover(
            market=ref.market, underwater=unit.account, counterparty=c.account, rank=r.rank, index_num=str(r.index.numerator),
            index_den=str(r.index.denominator), size=qty, reference_price=ref.reference_price, realized_pnl=fill.taker_realized_pnl,
            covered=covered, deficit_remaining=deficit,
        ))
    if deficit > 0:
        ctx.emit(AdlShortfall(market=ref.market, underwater=unit.account, unmatched=0))


def units_to_deleverage(ws: WorkingState) -> list[Unit]:
    """``units_in_state`` plus every unit with a LiquidationRef, then the insurance fund.

    A cross account whose positions were all sold beyond bankruptcy has no
    position left, so ``units_in_state`` does not list it, yet its cash may be
    negative: the deficit the fund could not pay (policy ``seed``). Its
    LiquidationRef lists it until that deficit is covered.
    """
    units = set(units_in_state(ws))
    for key in ws.index.iter_prefix(NS_LIQ_REF):
        # NS_LIQ_REF + account (20 bytes) + unit (u32) + market (u32): keys.liq_ref_key
        units.add(Unit(key[1:21], int.from_bytes(key[21:25], "big")))
    fund = Unit(INSURANCE_FUND, CROSS)
    units.discard(fund)
    # The fund last, and always: it may have no position but a negative balance.
    return sorted(units) + [fund]


def deleverage_unit(ctx: TxContext, unit: Unit, health: Any, policy: str) -> None:
    """One underwater unit: close its positions, or (seed) cover its position-less deficit."""
    if health.positions:
        deleverage_positions(ctx, unit, policy)
    elif policy_of(policy).deficit_cover:
        cover_with_winners(ctx, unit, policy)
    else:
        ctx.emit(AdlShortfall(market=unit.market, underwater=unit.account, unmatched=0))


def run_adl(ws: WorkingState, time_ms: int) -> list[Any]:
    """End-of-block step 50."""
    chain = ws.get(CHAIN_KEY)
    events: list[Any] = []
    for unit in units_to_deleverage(ws):
        health = unit_health(ws, unit)
        if health.value >= 0:
            continue
        ctx = TxContext(ws=ws, chain=chain, tx_index=NO_TX, signer=unit.account, account=unit.account, time_ms=time_ms, events=events)
        error = atomically(ws, events, lambda: deleverage_unit(ctx, unit, health, chain.policy))
        if error is not None:
            # A hard bound (a 64-bit balance) stops this unit's ADL for the block, never the chain.
            events.append(WaterfallSkipped(account=unit.account, unit=unit.market, step="adl", code=error.code, message=error.message))
    # A reference is kept while its unit is still below zero (a deficit to cover next block).
    for key in ws.index.iter_prefix(NS_LIQ_REF):
        if unit_health(ws, Unit(key[1:21], int.from_bytes(key[21:25], "big"))).value >= 0:
            ws.delete(key)
    return events


def queue_for_position(ws: WorkingState, market: int, account: bytes) -> tuple[list[Ranked], int] | None:
    """The queue the account's position in ``market`` sits in (its own side), and its unit.

    This is the queue an underwater position on the *other* side would walk.
    None if the account has no open position there.
    """
    pos = ws.get(position_key(market, account))
    if pos is None or pos.size == 0:
        return None
    chain = ws.get(CHAIN_KEY)
    queue = build_queue(ws, market, winners_long=pos.size > 0, exclude=b"", ranking=policy_of(chain.policy).ranking)
    return queue, unit_of_position(account, market, pos).market


def adl_indicator(ws: WorkingState, market: int, account: bytes) -> dict[str, Any] | None:
    """A position's ADL queue indicator (protocol §12.10): rank, queue length, percentile and
    quintile 1-5 (5 = the front fifth, first to be deleveraged), with its exact index.

    None if there is no open position; ``rank`` None if the position is not eligible
    (its unit's value is <= 0).
    """
    from .adl_ranking import indicator

    found = queue_for_position(ws, market, account)
    if found is None:
        return None
    queue, unit = found
    out: dict[str, Any] = {"market": market, "queue_length": len(queue), "rank": None, "percentile": None, "quintile": None, "index_num": None, "index_den": None}
    ind = indicator(queue, account, unit)
    if ind is not None:
        out.update(ind)
        r = queue[ind["rank"] - 1]
        out.update(index_num=str(r.index.numerator), index_den=str(r.index.denominator), ranking_hash=ranking_hash(queue).hex())
    return out
