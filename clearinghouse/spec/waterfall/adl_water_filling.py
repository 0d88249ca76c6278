"""Policy ``risk-water-filling`` (protocol §12.14): the most leveraged winners are reduced first.

After Campbell, Hey, Moallemi and Nutz, "Risk-Based Auto-Deleveraging" (arXiv
2603.15963): the ADL that minimises the largest leverage left drains leverage
from the top down to a common level. Here, per underwater position, round 1 at
the bankruptcy price and round 2 at the mark (``adl_pro_rata.deleverage_allocated``)
each give the lots by ``spec.math.adl_allocation.water_fill`` over the opposite
side's open, eligible positions (live, in ascending unit order), with leverage
``|size| x mark / value`` of each position's margin unit and each winner capped
by its size and ``affordable`` at the round's price.
"""

from __future__ import annotations

from clearinghouse.spec.math.adl_allocation import LEVERAGE_SCALE, Holding, water_fill
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.waterfall.adl_pro_rata import Allocation, Winners, affordable, deleverage_allocated
from clearinghouse.spec.waterfall.policies import Policy
from clearinghouse.spec.waterfall.ranking import Candidate
from clearinghouse.spec.waterfall.units import Unit


def water_filling_allocation(lots: int, winners: list[Candidate], price: int, at_mark: bool) -> Allocation:
    """Lots by ``water_fill``; each winner's weight is its leverage in 1/``LEVERAGE_SCALE``
    (rounded down), evidence only (protocol §12.14)."""
    holdings = [
        Holding(size=abs(c.size), mark=c.mark, value=c.value, cap=abs(c.size) if at_mark else affordable(c, price))
        for c in winners
    ]
    weights = [abs(c.size) * c.mark * LEVERAGE_SCALE // c.value for c in winners]
    return Allocation(water_fill(lots, holdings), weights, LEVERAGE_SCALE)


def deleverage_water_filling(ctx: TxContext, unit: Unit, policy: Policy, queues: Winners) -> None:
    """Policy ``risk-water-filling``, step 50 for a unit with open positions (protocol §12.14).

    Raises:
        InvalidAmount, LimitExceeded: from ``transfer_position`` (the unit is undone, ``WaterfallSkipped``).
    """
    deleverage_allocated(ctx, unit, policy, queues, water_filling_allocation)
