"""Policy ``pro-rata`` (protocol §12.13): an underwater position closed over every winner at once.

For each of the underwater unit's positions, in ascending market order, against
the opposite side of its market (the block's shared queue, §12.10, read as a
set: every open, eligible entry, live), listed in ascending unit order:

* round 1, at the unit's bankruptcy price ``p`` (rounded in its favour, §12.8):
  ``|size|`` lots shared in proportion to each winner's capacity
  ``c_u = min(uPnL, value)`` (``spec.math.adl_allocation.pro_rata_lots``), each
  capped by ``floor(c_u / loss)``, its size and ``affordable``;
* round 2, at the mark, for what round 1 left: in proportion to live size
  (a fill at the mark costs nobody anything);
* what is still unmatched: ``AdlShortfall``. The rounding residue goes to the
  fund as in §12.7, and what is still below zero after the unit's ADL is the
  fund's (``fund_absorbs``) and then the haircut's (§12.7, §12.12).

Every lot moves with ``transfer_position`` (reason ``adl``) and one ``AdlStep``
whose ``rank`` is the winner's place in the unit-ordered list and whose
``index_num / index_den`` is its weight over the round's total weight.
``deleverage_allocated`` is shared with ``risk-water-filling`` (§12.14).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from clearinghouse.spec.constants import CROSS
from clearinghouse.spec.math.adl_allocation import affordable_lots, pro_rata_capacity, pro_rata_lots
from clearinghouse.spec.math.liquidation import Exposure, bankruptcy_prices, round_bankruptcy_price
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import INSURANCE_FUND, market_spec_key
from clearinghouse.spec.trading.transfer import transfer_position
from clearinghouse.spec.waterfall.events import AdlQueue, AdlShortfall, AdlStep
from clearinghouse.spec.waterfall.insurance_fund import sweep_to_fund
from clearinghouse.spec.waterfall.policies import Policy
from clearinghouse.spec.waterfall.ranking import Candidate
from clearinghouse.spec.waterfall.units import Unit, unit_health


class Winners(Protocol):
    """What the allocation policies read from the block's shared queues (``adl.Queues``) (protocol §12.13)."""

    def winners(self, market: int, winners_long: bool, exclude: bytes) -> list[Candidate]: ...

    def evidence(self, market: int, unit: Unit, size: int, price: int, policy: str) -> AdlQueue: ...


class Allocation(NamedTuple):
    """One round's split of an underwater position over its winners (protocol §12.13, §12.14)."""

    lots: list[int]
    """Lots each winner closes, in the winners' (unit) order."""
    weights: list[int]
    """Each winner's weight (its share's numerator, the ``AdlStep`` index)."""
    total: int
    """The weights' denominator (the ``AdlStep`` index denominator)."""


Allocator = Callable[[int, list[Candidate], int, bool], Allocation]
"""``(lots, winners in unit order, price, at_mark) -> Allocation``."""


def loss_per_lot(c: Candidate, price: int) -> int:
    """What closing one lot of ``c`` at ``price`` instead of its mark costs it (negative: a gain) (protocol §12.13)."""
    return c.mark - price if c.size > 0 else price - c.mark


def affordable(c: Candidate, price: int) -> int:
    """``adl.affordable``: lots of ``c`` that may close at ``price`` without taking its unit below
    zero (protocol §12.13)."""
    return affordable_lots(abs(c.size), c.value, loss_per_lot(c, price))


def pro_rata_allocation(lots: int, winners: list[Candidate], price: int, at_mark: bool) -> Allocation:
    """Round 1: weights ``c_u = min(uPnL, value)``; round 2 (``at_mark``): weights = live size (protocol §12.13)."""
    sizes = [abs(c.size) for c in winners]
    if at_mark:
        weights = sizes
        caps = sizes
        return Allocation(pro_rata_lots(lots, weights, 0, sizes, caps), weights, sum(weights))
    weights = [pro_rata_capacity(c.size, c.cost, c.mark, c.value) for c in winners]
    # One market, one price: every winner on this side loses the same per lot (its mark is the market's).
    loss = max((loss_per_lot(c, price) for c in winners), default=0)
    caps = [affordable(c, price) for c in winners]
    return Allocation(pro_rata_lots(lots, weights, loss, sizes, caps), weights, sum(weights))


def deleverage_allocated(ctx: TxContext, unit: Unit, policy: Policy, queues: Winners, allocate: Allocator) -> None:
    """Close an underwater unit's positions over the opposite side's winners as ``allocate`` shares
    them (protocol §12.13, §12.14): round 1 at the bankruptcy price, round 2 at the mark.

    Raises:
        InvalidAmount, LimitExceeded: from ``transfer_position`` (the unit is undone, ``WaterfallSkipped``).
    """
    ws = ctx.ws
    health = unit_health(ws, unit)
    exact = bankruptcy_prices(health.value, [Exposure(p.size, mark, mm) for _m, p, mark, mm in health.positions])
    moved = 0  # the unit's value change from its round-1 fills (as in deleverage_positions)
    for (market, pos, mark, _mm), bp in zip(health.positions, exact, strict=True):
        price = round_bankruptcy_price(bp, pos.size)
        first = queues.winners(market, pos.size < 0, unit.account)  # read before anything moves
        ctx.emit(queues.evidence(market, unit, pos.size, price, policy.name))
        spec = ws.get(market_spec_key(market))
        remaining = abs(pos.size)
        for round_price, at_mark in ((price, False), (mark, True)):
            if remaining == 0:
                break
            winners = queues.winners(market, pos.size < 0, unit.account) if at_mark else first
            lots, weights, total = allocate(remaining, winners, round_price, at_mark)
            for n, (c, qty, w) in enumerate(zip(winners, lots, weights, strict=True), 1):
                if qty == 0:
                    continue
                moved_event = transfer_position(
                    ctx, market, spec, unit.account, c.account, pos.size < 0, qty, round_price, "adl"
                )
                remaining -= qty
                if not at_mark:
                    moved += qty * (round_price - mark) if pos.size > 0 else qty * (mark - round_price)
                ctx.emit(
                    AdlStep(
                        market=market,
                        underwater=unit.account,
                        counterparty=c.account,
                        counterparty_unit=c.unit,
                        rank=n,
                        index_num=str(w),
                        index_den=str(max(total, 1)),
                        size=qty,
                        price=round_price,
                        realized_pnl=moved_event.counterparty_realized_pnl,
                        remaining_after=remaining if pos.size > 0 else -remaining,
                        neighbour_above=[],
                        neighbour_below=[],
                    )
                )
        if remaining:
            ctx.emit(
                AdlShortfall(
                    market=market, underwater=unit.account, unmatched=remaining if pos.size > 0 else -remaining
                )
            )
    after = unit_health(ws, unit)
    residue = health.value + moved
    if not after.positions and residue > 0 and unit.account != INSURANCE_FUND:
        # Rounding in the unit's favour left it a little above zero: the residue goes to the fund (§12.7).
        sweep_to_fund(ws, Unit(unit.account, CROSS), residue)


def deleverage_pro_rata(ctx: TxContext, unit: Unit, policy: Policy, queues: Winners) -> None:
    """Policy ``pro-rata``, step 50 for a unit with open positions (protocol §12.13).

    Raises:
        InvalidAmount, LimitExceeded: from ``transfer_position`` (the unit is undone, ``WaterfallSkipped``).
    """
    deleverage_allocated(ctx, unit, policy, queues, pro_rata_allocation)
