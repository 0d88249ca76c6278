"""Policy ``clawback`` (protocol §12.15): socialised loss; positions stay open, profit pays.

The historical socialised-loss rule (before ADL queues): a bankrupt unit's loss
is taken from the profitable traders of the market in proportion to their
profit. For a unit below zero in step 50 (with or without positions):

* the markets concerned are those of its open positions and of its liquidation
  references (``R`` keys); with neither (the insurance fund below zero with no
  position), every market;
* the winners are the margin units, other than the underwater account's and the
  insurance fund's, that hold a position with ``uPnL > 0`` in one of those
  markets (either side); a winner's capacity is
  ``c_u = min(Σ its positive uPnL there, its unit's value)`` (at the marks);
* ``min(deficit, Σ c)`` micro-USDC is shared in proportion to ``c_u``, each at
  most ``c_u``, by largest remainder in ascending unit order
  (``spec.math.adl_allocation.clawback_shares``) and moved from each winner's
  unit (an isolated bucket while its position is open, else cross cash) to the
  underwater unit, with one ``Clawback`` event each.

No position moves: the underwater unit keeps its positions (at value >= 0 after
the clawback; a user unit below maintenance is liquidated again in a later
block, the fund keeps what it took over). What the winners cannot cover is
the fund's (``fund_absorbs``) and then the haircut's (§12.7, §12.12).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from clearinghouse.spec.math.adl_allocation import clawback_shares
from clearinghouse.spec.state.access import get_market_state, market_positions
from clearinghouse.spec.state.accounts import add_cash
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import (
    CHAIN_KEY,
    INSURANCE_FUND,
    NS_LIQ_REF,
    position_key,
)
from clearinghouse.spec.waterfall.events import Clawback
from clearinghouse.spec.waterfall.insurance_fund import credit_unit
from clearinghouse.spec.waterfall.policies import Policy
from clearinghouse.spec.waterfall.units import Unit, UnitHealth, unit_health, unit_of_position

if TYPE_CHECKING:
    from clearinghouse.spec.state.working_state import WorkingState
    from clearinghouse.spec.waterfall.adl_pro_rata import Winners


def clawback_markets(ws: WorkingState, unit: Unit, health: UnitHealth) -> list[int]:
    """The markets whose profitable positions pay ``unit``'s deficit (ascending) (protocol §12.15)."""
    markets = {m for m, _p, _mk, _mm in health.positions}
    prefix = NS_LIQ_REF + unit.account + unit.market.to_bytes(4, "big")
    markets |= {ws.get(k).market for k in ws.index.iter_prefix(prefix)}
    if not markets:
        markets = set(range(ws.get(CHAIN_KEY).market_count))
    return sorted(markets)


class ClawbackWinner(NamedTuple):
    """A unit that can give up profit for a clawback (protocol §12.15)."""

    unit: Unit
    capacity: int
    """c_u = min(unrealized profit in the clawback's markets, unit value), > 0."""
    value: int
    """The unit's value before the clawback."""


def clawback_winners(ws: WorkingState, unit: Unit, markets: list[int]) -> list[ClawbackWinner]:
    """The ``ClawbackWinner`` units in ascending unit order, capacity > 0 only (protocol §12.15)."""
    profit: dict[Unit, int] = {}
    for m in markets:
        mark = get_market_state(ws, m).mark_price
        for account, pos in market_positions(ws, m):
            if account in (unit.account, INSURANCE_FUND):
                continue
            upnl = pos.size * mark - pos.cost
            if pos.size == 0 or upnl <= 0:
                continue
            u = unit_of_position(account, m, pos)
            profit[u] = profit.get(u, 0) + upnl
    out = []
    for u in sorted(profit):
        value = unit_health(ws, u).value
        capacity = min(profit[u], value)
        if capacity > 0:
            out.append(ClawbackWinner(u, capacity, value))
    return out


def take_from_winner(ws: WorkingState, winner: Unit, amount: int) -> None:
    """Debit a winner's unit: its isolated bucket while the position is open, else cross cash (protocol §12.15)."""
    if not winner.is_cross:
        pos = ws.get(position_key(winner.market, winner.account))
        if pos is not None and pos.size != 0:
            credit_unit(ws, winner, -amount)
            return
    add_cash(ws, winner.account, -amount)


def clawback_unit(ctx: TxContext, unit: Unit, policy: Policy, queues: Winners) -> None:
    """Policy ``clawback``, step 50 for a unit below zero (protocol §12.15): cash from the
    profitable positions of its markets, in proportion to profit; no position moves.

    Raises:
        InvalidAmount: a balance would leave its 64-bit range (the unit is undone, ``WaterfallSkipped``).
    """
    ws = ctx.ws
    health = unit_health(ws, unit)
    deficit = -health.value
    if deficit <= 0:
        return
    winners = clawback_winners(ws, unit, clawback_markets(ws, unit, health))
    shares = clawback_shares(deficit, [c for _u, c, _v in winners])
    pool = sum(c for _u, c, _v in winners)
    remaining = deficit
    for (w, capacity, value), amount in zip(winners, shares, strict=True):
        if amount == 0:
            continue
        take_from_winner(ws, w, amount)
        credit_unit(ws, unit, amount)
        remaining -= amount
        ctx.emit(
            Clawback(
                underwater=unit.account,
                underwater_unit=unit.market,
                account=w.account,
                unit=w.market,
                amount=amount,
                capacity=capacity,
                value_before=value,
                deficit=deficit,
                pool=str(pool),
                deficit_remaining=remaining,
            )
        )
