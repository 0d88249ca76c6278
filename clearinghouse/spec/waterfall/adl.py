"""Auto-deleveraging (protocol §12.7-§12.10): closing underwater units against ranked winners.

End-of-block step 50, after the liquidation waterfall (protocol §12.7). Every
unit whose value is negative, in unit order, the insurance fund's cross side
last (backstops and deficit-cover slices can leave it below zero):

* with open positions: each position, in ascending market order, is closed
  against the opposite side's queue (``adl_ranking``, protocol §12.10),
  walking it: round 1 at the unit's bankruptcy price for that position (value
  spread over positions by maintenance margin, rounded in the unit's favour),
  each counterparty capped at what it can afford; round 2 closes what round 1
  left at the mark (a close at the mark costs nobody anything), so the
  underwater size is matched whenever the opposite side holds the lots.
  Each close is a position transfer of reason ``adl`` (protocol §10.9): no
  order, no fee, no last trade. The rounding residue goes to the insurance
  fund so the unit ends at exactly zero;
* with no positions (a deficit left by fills beyond bankruptcy that the fund
  could not pay), policy ``seed``: the article's deficit-cover rule walks the
  queue of the liquidated position's market and opposite side; from each
  winner it closes the fewest whole lots whose realized profit at the
  reference (bankruptcy) price covers what remains, against the insurance
  fund, which takes the slice over at that price (a position transfer of
  reason ``deficit_cover``).

Then nothing is left below zero (protocol §12.7, "no bad debt"): a user unit
still below zero is paid up to zero by the insurance fund, which may go
negative doing so; the fund, visited last, then charges its own negative
value to the accounts that held an open position when the step began (their
units with positions and their cross units), in proportion to value and
never below zero (``Haircut``). Only if all of
them together are worth less than the fund's deficit does the fund end the
block below zero (the bounded exception of protocol §12.12).

Queues are ranked once per market side per block and shared by every unit
served in the block (protocol §12.10): each walk reads an entry's size and
value live when it reaches it and passes over entries closed earlier.

No counterparty is made insolvent: closing at the bankruptcy (or reference)
price instead of the mark costs a counterparty |price - mark| per lot, so
it gives at most value // that lots (solvency, protocol §1.1). Units without
open positions are never counterparties and never pay a haircut: no one
without a position loses anything to ADL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, NamedTuple

from clearinghouse.spec.constants import CROSS, NO_TX
from clearinghouse.spec.events import BaseEvent
from clearinghouse.spec.math.adl_allocation import affordable_lots
from clearinghouse.spec.math.integers import ceil_div
from clearinghouse.spec.math.liquidation import Exposure, bankruptcy_prices, round_bankruptcy_price, smallest_cover_qty
from clearinghouse.spec.state.access import market_positions
from clearinghouse.spec.state.accounts import add_cash
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import (
    CHAIN_KEY,
    INSURANCE_FUND,
    NS_LIQ_REF,
    market_spec_key,
    parse_liq_ref_key,
    position_key,
)
from clearinghouse.spec.state.working_state import WorkingState, atomically
from clearinghouse.spec.trading.transfer import transfer_position
from clearinghouse.spec.waterfall.adl_pro_rata import deleverage_pro_rata
from clearinghouse.spec.waterfall.adl_water_filling import deleverage_water_filling
from clearinghouse.spec.waterfall.clawback import clawback_unit
from clearinghouse.spec.waterfall.events import (
    AdlQueue,
    AdlShortfall,
    AdlStep,
    DeficitCover,
    Haircut,
    InsuranceCover,
    QueueEntry,
    WaterfallSkipped,
)
from clearinghouse.spec.waterfall.insurance_fund import credit_unit, fund_value, sweep_to_fund
from clearinghouse.spec.waterfall.policies import Policy, policy_of
from clearinghouse.spec.waterfall.ranking import Candidate, Ranked, rank_candidates, ranking_hash
from clearinghouse.spec.waterfall.unit_index import FUND_UNIT, margin_index
from clearinghouse.spec.waterfall.units import Unit, UnitHealth, unit_health, unit_of_position, units_in_state

QUEUE_EVIDENCE_TOP = 10
"""How many leading queue entries an AdlQueue event lists (the hash covers all)."""


def build_queue(ws: WorkingState, market: int, winners_long: bool, exclude: bytes, ranking: str) -> list[Ranked]:
    """The ranked queue of ``market``'s positions on one side (longs if ``winners_long``; protocol §12.7)."""
    candidates = []
    health_cache: dict[Unit, UnitHealth] = {}
    for account, pos in market_positions(ws, market):
        if account == exclude or pos.size == 0 or (pos.size > 0) != winners_long:
            continue
        unit = unit_of_position(account, market, pos)
        health = health_cache.get(unit)
        if health is None:
            health = health_cache[unit] = unit_health(ws, unit)
        mm = next(mm for m, _p, _mk, mm in health.positions if m == market)
        mark = next(mk for m, _p, mk, _mm in health.positions if m == market)
        candidates.append(
            Candidate(
                account=account,
                unit=unit.market,
                size=pos.size,
                cost=pos.cost,
                mark=mark,
                value=health.value,
                maintenance=mm,
                unit_maintenance=health.maintenance,
            )
        )
    return rank_candidates(candidates, ranking)


@dataclass
class BlockQueue:
    """A market side's queue as ranked once in this block's step 50 (protocol §12.10).

    ``entries`` and ``hash`` are the ranking at build time; walks read each
    entry's live size and value. ``start`` skips the prefix of entries whose
    position in the market was closed earlier in the step (a closed position
    cannot reopen during step 50), so serving many units costs O(queue) once
    rather than O(queue) per unit.
    """

    market: int
    winners_long: bool
    entries: list[Ranked]
    hash: bytes
    start: int = 0


@dataclass
class Queues:
    """The block's shared queues, built lazily on first use, one per (market, side; protocol §12.7)."""

    ws: WorkingState
    ranking: str
    built: dict[tuple[int, bool], BlockQueue] = field(default_factory=dict)
    builds: int = 0
    """How many queues were ranked (one per market side used in the block)."""

    def get(self, market: int, winners_long: bool) -> BlockQueue:
        q = self.built.get((market, winners_long))
        if q is None:
            entries = build_queue(self.ws, market, winners_long, exclude=b"", ranking=self.ranking)
            q = self.built[(market, winners_long)] = BlockQueue(market, winners_long, entries, ranking_hash(entries))
            self.builds += 1
        return q

    def cursors(self) -> dict[tuple[int, bool], int]:
        """Where each queue's walks start now (to undo a unit whose journal is rolled back)."""
        return {key: q.start for key, q in self.built.items()}

    def winners(self, market: int, winners_long: bool, exclude: bytes) -> list[Candidate]:
        """The side's open entries as they stand now (``walk``), value > 0, in ascending unit order:
        the winners the allocation policies share a position over (protocol §12.13, §12.14)."""
        fresh = (market, winners_long) not in self.built
        q = self.get(market, winners_long)
        if fresh:
            # Ranked just now from the state as it is: its entries are the live candidates.
            live = [r.candidate for r in q.entries if r.candidate.account != exclude]
        else:
            live = [c for _i, _r, c in walk(self.ws, q, exclude) if c.value > 0]
        return sorted(live, key=lambda c: (c.account, c.unit))

    def evidence(self, market: int, unit: Unit, size: int, price: int, policy: str) -> AdlQueue:
        """The ``AdlQueue`` event of the side that an underwater ``size`` in ``market`` is closed against."""
        return queue_event(market, unit, size, price, policy, self.get(market, winners_long=size < 0))

    def rollback(self, cursors: dict[tuple[int, bool], int]) -> None:
        """After a unit is undone (``WaterfallSkipped``): its transfers are gone, so entries it closed
        are open again; queues ranked during it saw its undone transfers and are dropped (ranked
        again on use)."""
        self.built = {key: q for key, q in self.built.items() if key in cursors}
        for key, start in cursors.items():
            self.built[key].start = start


def live_candidate(ws: WorkingState, q: BlockQueue, r: Ranked) -> Candidate | None:
    """Entry ``r`` as it stands now: its current size, cost, unit value and mark; None if closed (protocol §12.7)."""
    c = r.candidate
    pos = ws.get(position_key(q.market, c.account))
    if pos is None or pos.size == 0 or (pos.size > 0) != q.winners_long:
        return None
    health = unit_health(ws, Unit(c.account, c.unit))
    mark = next(mk for m, _p, mk, _mm in health.positions if m == q.market)
    return replace(c, size=pos.size, cost=pos.cost, value=health.value, mark=mark)


class QueueStop(NamedTuple):
    """One open entry met by ``walk``: its position in the queue, the ranked entry, its live state
    (protocol §12.7)."""

    position: int
    ranked: Ranked
    candidate: Candidate


def walk(ws: WorkingState, q: BlockQueue, exclude: bytes) -> Iterator[QueueStop]:
    """Yield a ``QueueStop`` (i, ranked, live candidate) for the queue's open entries, in rank order
    (protocol §12.7).

    Entries of ``exclude`` (the underwater account) are passed over; a closed
    entry at the front advances ``q.start`` for every later walk in the block.
    """
    i = q.start
    while i < len(q.entries):
        r = q.entries[i]
        c = live_candidate(ws, q, r)
        if c is None:
            if i == q.start:
                q.start += 1
        elif c.account != exclude:
            yield QueueStop(i, r, c)
        i += 1


def queue_entry(r: Ranked) -> QueueEntry:
    """One ranked queue member as evidence (exact index as numerator and denominator; protocol §12.7)."""
    c = r.candidate
    return QueueEntry(
        account=c.account,
        unit=c.unit,
        size=c.size,
        index_num=str(r.num),
        index_den=str(r.den),
    )


def neighbours(queue: list[Ranked], i: int) -> tuple[list[QueueEntry], list[QueueEntry]]:
    """The entries just above and below rank ``i`` of a queue, for the evidence of one ADL step (protocol §12.7)."""
    above = [queue_entry(queue[i - 1])] if i > 0 else []
    below = [queue_entry(queue[i + 1])] if i + 1 < len(queue) else []
    return above, below


def queue_event(market: int, unit: Unit, size: int, price: int, policy: str, q: BlockQueue) -> AdlQueue:
    """The ``AdlQueue`` evidence of ``q`` for one underwater position (``policy``: the policy's name;
    protocol §12.7, §12.11)."""
    return AdlQueue(
        market=market,
        underwater=unit.account,
        underwater_unit=unit.market,
        underwater_size=size,
        bankruptcy_price=price,
        policy=policy,
        queue_length=len(q.entries),
        ranking_hash=q.hash,
        top=[queue_entry(r) for r in q.entries[:QUEUE_EVIDENCE_TOP]],
    )


def affordable(c: Candidate, price: int) -> int:
    """Lots of ``c`` that may close at ``price`` without taking its unit below zero (protocol §12.7).

    Closing at ``price`` rather than the mark changes the unit's value by
    (price - mark) per lot for a long, (mark - price) for a short; where that
    is a loss, at most value // loss lots (floor: the unit stays >= 0).
    """
    loss = c.mark - price if c.size > 0 else price - c.mark
    return affordable_lots(abs(c.size), c.value, loss)


def close_against_queue(ctx: TxContext, unit: Unit, q: BlockQueue, size: int, price: int, remaining: int) -> int:
    """One round of the walk: close up to ``remaining`` lots of the underwater position (signed
    ``size``) at ``price`` against the queue, each entry capped by ``affordable``; returns what is left.

    See protocol §12.7.
    """
    ws = ctx.ws
    spec = ws.get(market_spec_key(q.market))
    for i, r, c in walk(ws, q, unit.account):
        if remaining == 0:
            break
        qty = min(remaining, affordable(c, price))
        if qty == 0:
            continue
        transfer = transfer_position(ctx, q.market, spec, unit.account, c.account, size < 0, qty, price, "adl")
        remaining -= qty
        above, below = neighbours(q.entries, i)
        ctx.emit(
            AdlStep(
                market=q.market,
                underwater=unit.account,
                counterparty=c.account,
                counterparty_unit=c.unit,
                rank=r.rank,
                index_num=str(r.num),
                index_den=str(r.den),
                size=qty,
                price=price,
                realized_pnl=transfer.counterparty_realized_pnl,
                remaining_after=remaining if size > 0 else -remaining,
                neighbour_above=above,
                neighbour_below=below,
            )
        )
    return remaining


def deleverage_positions(ctx: TxContext, unit: Unit, policy: Policy, queues: Queues) -> None:
    """Close an underwater unit's positions against the queues (protocol §12.7).

    Per position: round 1 at its bankruptcy price, capped by what each entry
    can afford; round 2, for what is left, at the mark. Lots neither round can
    match (the opposite side's open, eligible lots ran out) are reported with
    ``AdlShortfall`` and stay open.
    """
    ws = ctx.ws
    health = unit_health(ws, unit)
    exact = bankruptcy_prices(health.value, [Exposure(p.size, mark, mm) for _m, p, mark, mm in health.positions])
    moved = 0  # the unit's value change from its ADL transfers: sum of qty x (price - mark) per closed side
    for (market, pos, mark, _mm), bp in zip(health.positions, exact):
        price = round_bankruptcy_price(bp, pos.size)
        q = queues.get(market, winners_long=pos.size < 0)
        ctx.emit(queue_event(market, unit, pos.size, price, policy.name, q))
        remaining = close_against_queue(ctx, unit, q, pos.size, price, abs(pos.size))
        closed = abs(pos.size) - remaining
        moved += closed * (price - mark) if pos.size > 0 else closed * (mark - price)
        if remaining:
            remaining = close_against_queue(ctx, unit, q, pos.size, mark, remaining)
        if remaining:
            ctx.emit(
                AdlShortfall(
                    market=market, underwater=unit.account, unmatched=remaining if pos.size > 0 else -remaining
                )
            )
    after = unit_health(ws, unit)
    residue = health.value + moved
    if not after.positions and residue > 0 and unit.account != INSURANCE_FUND:
        # Rounding in the unit's favour left it a little above zero: that residue goes to the fund.
        # It sits in cross cash either way: a cross unit's own cash, or, for an isolated unit,
        # the owner's cross cash, where settle_fill returned the closed position's bucket.
        sweep_to_fund(ws, Unit(unit.account, CROSS), residue)


def take_from_unit(ws: WorkingState, account: bytes, unit_market: int, amount: int) -> None:
    """Debit a winner's unit: its isolated bucket while the position is open, else cross cash (protocol §12.7)."""
    if unit_market != CROSS:
        pos = ws.get(position_key(unit_market, account))
        if pos is not None and pos.size != 0:
            credit_unit(ws, Unit(account, unit_market), -amount)
            return
    add_cash(ws, account, -amount)


def cover_with_winners(ctx: TxContext, unit: Unit, policy: Policy, queues: Queues) -> None:
    """Policy ``seed``: cover a position-less unit's deficit from ranked winners' slices (protocol §12.9)."""
    ws = ctx.ws
    refs = [ws.get(k) for k in ws.index.iter_prefix(NS_LIQ_REF + unit.account + unit.market.to_bytes(4, "big"))]
    deficit = -unit_health(ws, unit).value
    if not refs:
        return
    # The deficit is attributed to the liquidated position with the largest reference notional.
    ref = max(refs, key=lambda r: (r.size * r.reference_price, -r.market))
    q = queues.get(ref.market, winners_long=not ref.was_long)
    ctx.emit(queue_event(ref.market, unit, 0, ref.reference_price, policy.name, q))
    spec = ws.get(market_spec_key(ref.market))
    for _i, r, c in walk(ws, q, unit.account):
        if deficit <= 0:
            break
        if c.account == INSURANCE_FUND:
            continue  # the fund takes the slices: closing its own position against itself moves nothing
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
        transfer = transfer_position(
            ctx, ref.market, spec, c.account, INSURANCE_FUND, c.size < 0, qty, ref.reference_price, "deficit_cover"
        )
        covered = max(0, min(transfer.closing_realized_pnl, deficit, room))
        take_from_unit(ws, c.account, c.unit, covered)
        credit_unit(ws, unit, covered)
        deficit -= covered
        ctx.emit(
            DeficitCover(
                market=ref.market,
                underwater=unit.account,
                counterparty=c.account,
                rank=r.rank,
                index_num=str(r.num),
                index_den=str(r.den),
                size=qty,
                reference_price=ref.reference_price,
                realized_pnl=transfer.closing_realized_pnl,
                covered=covered,
                deficit_remaining=deficit,
            )
        )


def fund_absorbs(ctx: TxContext, unit: Unit) -> None:
    """A user unit still below zero after its ADL: the insurance fund pays it up to exactly zero,
    whatever the fund holds (it may go negative; its own deficit is then haircut, protocol §12.7)."""
    ws = ctx.ws
    value = unit_health(ws, unit).value
    if value >= 0:
        return
    deficit = -value
    before = fund_value(ws)
    add_cash(ws, INSURANCE_FUND, -deficit)
    credit_unit(ws, unit, deficit)
    ctx.emit(
        InsuranceCover(
            account=unit.account,
            unit=unit.market,
            deficit=deficit,
            paid=deficit,
            fund_before=before,
            fund_after=before - deficit,
        )
    )


def haircut_pool(ws: WorkingState) -> list[Unit]:
    """Who may be haircut for the fund's deficit (protocol §12.7): every account that holds an open
    position as step 50 begins, the fund aside: each of its units with an open position, and its
    cross unit always (an isolated winner closed whole by ADL in this step is flat by the time of
    the haircut, but what it realized went back to its cross cash). Sorted in unit order."""
    # Straight from the position records: a unit's health lists exactly its positions of non-zero
    # size (an account's open markets are the markets of those; §7.2), so no health is computed
    # here. O(open positions) of reads, once per block that reaches a deficit.
    units: set[Unit] = set()
    for market in range(ws.get(CHAIN_KEY).market_count):
        for account, pos in market_positions(ws, market):
            if account != INSURANCE_FUND and pos.size != 0:
                units.add(unit_of_position(account, market, pos))
                units.add(Unit(account, CROSS))
    return sorted(units)


def haircut(ctx: TxContext, pool: list[Unit]) -> None:
    """The fund's own deficit, charged to ``pool`` (``haircut_pool``) in proportion to each unit's
    value, each share rounded up and never more than the unit's value, in unit order until the
    deficit is met (protocol §12.7). What the pool cannot pay stays on the fund:
    ``AdlShortfall{market = CROSS, unmatched = 0}`` (protocol §12.12)."""
    ws = ctx.ws
    deficit = -fund_value(ws)
    if deficit <= 0:
        return
    payers = [(u, v) for u in pool if (v := unit_health(ws, u).value) > 0]
    total = sum(v for _u, v in payers)
    remaining = deficit
    for u, v in payers:
        if remaining == 0:
            break
        amount = min(v, ceil_div(deficit * v, total), remaining)
        take_from_unit(ws, u.account, u.market, amount)
        add_cash(ws, INSURANCE_FUND, amount)
        remaining -= amount
        ctx.emit(
            Haircut(
                account=u.account,
                unit=u.market,
                amount=amount,
                value_before=v,
                deficit=deficit,
                pool_value=str(total),
                deficit_remaining=remaining,
            )
        )
    if remaining:
        ctx.emit(AdlShortfall(market=CROSS, underwater=INSURANCE_FUND, unmatched=0))


def reference_units(ws: WorkingState) -> set[Unit]:
    """Every unit with a LiquidationRef (liquidated this block, or a deficit carried from an earlier one)
    (protocol §12.7)."""
    # NS_LIQ_REF + account (20 bytes) + unit (u32) + market (u32): keys.liq_ref_key
    return {Unit(ref.account, ref.unit) for ref in map(parse_liq_ref_key, ws.index.iter_prefix(NS_LIQ_REF))}


def units_to_deleverage(ws: WorkingState) -> list[Unit]:
    """``units_in_state`` plus every unit with a LiquidationRef, then the insurance fund (protocol §12.7).

    A cross account whose positions were all sold beyond bankruptcy has no
    position left, so ``units_in_state`` does not list it, yet its cash may be
    negative: the deficit the fund could not pay (policy ``seed``). Its
    LiquidationRef lists it until that deficit is covered.
    """
    units = set(units_in_state(ws)) | reference_units(ws)
    fund = Unit(INSURANCE_FUND, CROSS)
    units.discard(fund)
    # The fund last, and always: it may have no position but a negative balance.
    return sorted(units) + [fund]


class AdlRule(NamedTuple):
    """What step 50 does for an underwater unit under one ``Policy.adl`` switch (protocol §12.7)."""

    with_positions: Callable[[TxContext, Unit, Policy, Queues], None]
    without_positions: Callable[[TxContext, Unit, Policy, Queues], None] | None
    """None: nothing before the fund pays (``seed``'s deficit cover aside, ``Policy.deficit_cover``)."""


ADL_RULES: dict[str, AdlRule] = {
    "queue": AdlRule(deleverage_positions, None),
    "pro_rata": AdlRule(deleverage_pro_rata, None),
    "water_filling": AdlRule(deleverage_water_filling, None),
    "clawback": AdlRule(clawback_unit, clawback_unit),
}
"""The one dispatch of step 50, keyed by ``Policy.adl`` (protocol §12.7, §12.13-§12.15)."""


def deleverage_unit(
    ctx: TxContext, unit: Unit, health: UnitHealth, policy: Policy, queues: Queues, pool: list[Unit]
) -> None:
    """One underwater unit: its policy's rule (``ADL_RULES``), or (seed) cover its position-less
    deficit; then whatever is still below zero goes to the fund (a user unit) or is haircut (the fund)
    (protocol §12.7)."""
    rule = ADL_RULES[policy.adl]
    if health.positions:
        rule.with_positions(ctx, unit, policy, queues)
    elif rule.without_positions is not None:
        rule.without_positions(ctx, unit, policy, queues)
    elif policy.deficit_cover:
        cover_with_winners(ctx, unit, policy, queues)
    if unit.account == INSURANCE_FUND:
        haircut(ctx, pool)
    else:
        fund_absorbs(ctx, unit)


def adl_walk(ws: WorkingState) -> Iterator[Unit]:
    """The walk of ``units_to_deleverage`` (unit order, the fund last), passing over the units the
    liquidation index (``unit_index.margin_index``) knows to be at or above zero and that nothing
    touched since: it yields every unit that can be below zero when its turn comes, in order (protocol §12.7)."""
    index = margin_index(ws)
    refs = reference_units(ws)
    refs.discard(FUND_UNIT)
    first = set(index.watched) | refs
    yield from index.visit(first, lambda u: u != FUND_UNIT and (u in refs or index.is_member(u)))
    yield FUND_UNIT  # the fund last, and always: it may have no position but a negative balance


def run_adl(ws: WorkingState, time_ms: int) -> list[BaseEvent]:
    """End-of-block step 50 (protocol §12.7): every unit of ``units_to_deleverage`` below zero
    when its turn comes, in that order (walked through ``adl_walk``)."""
    chain = ws.get(CHAIN_KEY)
    events: list[BaseEvent] = []
    pool: list[Unit] | None = None
    policy = policy_of(chain.policy)
    queues = Queues(ws, policy.ranking)
    for unit in adl_walk(ws):
        health = unit_health(ws, unit)
        if health.value >= 0:
            continue
        if pool is None:
            # Taken before the first underwater unit is served: nothing has changed since the step began.
            pool = haircut_pool(ws)
        ctx = TxContext(
            ws=ws,
            chain=chain,
            tx_index=NO_TX,
            signer=unit.account,
            account=unit.account,
            time_ms=time_ms,
            events=events,
        )
        cursors = queues.cursors()
        error = atomically(ws, events, partial(deleverage_unit, ctx, unit, health, policy, queues, pool))
        if error is not None:
            queues.rollback(cursors)
            # A hard bound (a 64-bit balance) stops this unit's ADL for the block, never the chain.
            events.append(
                WaterfallSkipped(
                    account=unit.account, unit=unit.market, step="adl", code=error.code, message=error.message
                )
            )
    # A reference is kept while its unit is still below zero (only after a WaterfallSkipped).
    for key in ws.index.iter_prefix(NS_LIQ_REF):
        ref = parse_liq_ref_key(key)
        if unit_health(ws, Unit(ref.account, ref.unit)).value >= 0:
            ws.delete(key)
    return events


def queue_for_position(ws: WorkingState, market: int, account: bytes) -> tuple[list[Ranked], int] | None:
    """The queue the account's position in ``market`` sits in (its own side), and its unit (protocol §12.7).

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
    from clearinghouse.spec.waterfall.ranking import indicator

    found = queue_for_position(ws, market, account)
    if found is None:
        return None
    queue, unit = found
    out: dict[str, Any] = {
        "market": market,
        "queue_length": len(queue),
        "rank": None,
        "percentile": None,
        "quintile": None,
        "index_num": None,
        "index_den": None,
    }
    ind = indicator(queue, account, unit)
    if ind is not None:
        out.update(ind)
        r = queue[ind["rank"] - 1]
        out.update(index_num=str(r.num), index_den=str(r.den), ranking_hash=ranking_hash(queue).hex())
    return out
