"""Margin units: what liquidation and ADL act on.

A unit is either an account's cross side (all its cross positions and its
cross cash; ``market == CROSS``) or one isolated position with its bucket.
Units are visited in ascending (account, market) order, CROSS last for an
account, so every replayer processes them identically.
"""

from __future__ import annotations

from dataclasses import dataclass

from clearinghouse.spec.constants import CROSS
from clearinghouse.spec.state.access import market_positions
from clearinghouse.spec.state.accounts import get_account
from clearinghouse.spec.state.keys import CHAIN_KEY, market_state_key, position_key
from clearinghouse.spec.state.records import Position
from clearinghouse.spec.state.working_state import WorkingState
from clearinghouse.spec.trading.margin import PositionAtMark, cross_health, isolated_health
from clearinghouse.spec.trading.positions import unsettled_funding
from clearinghouse.spec.waterfall.events import PositionSnapshot


@dataclass(frozen=True, order=True, slots=True)
class Unit:
    """A margin unit: an account's cross side (``market == CROSS``) or one isolated position (protocol §12.1)."""

    account: bytes
    market: int

    @property
    def is_cross(self) -> bool:
        return self.market == CROSS


@dataclass
class UnitHealth:
    """Value and maintenance margin of a unit at the marks, with its open positions (protocol §12.1).

    Built from ``trading.margin.cross_health`` / ``isolated_health`` (the one
    source of value and margin), so unsettled funding is counted the same way
    (protocol §11.6).
    """

    value: int
    maintenance: int
    positions: list[PositionAtMark]
    """(market, position, mark, maintenance margin) for each open position, ascending market."""

    def snapshots(self) -> list[PositionSnapshot]:
        return [PositionSnapshot(market=m, size=p.size, cost=p.cost, mark=mark) for m, p, mark, _mm in self.positions]


def unit_health(ws: WorkingState, unit: Unit) -> UnitHealth:
    """A unit's value and maintenance margin at the marks, unsettled funding counted (protocol §12.1)."""
    if unit.is_cross:
        h = cross_health(ws, unit.account, initial=False)
        return UnitHealth(value=h.value, maintenance=h.maintenance, positions=h.positions)
    pos = ws.get(position_key(unit.market, unit.account))
    if pos is None:
        return UnitHealth(value=0, maintenance=0, positions=[])
    if pos.size == 0:
        return UnitHealth(value=pos.iso_cash, maintenance=0, positions=[])
    ih = isolated_health(ws, unit.market, pos)
    mark = ws.get(market_state_key(unit.market)).mark_price
    return UnitHealth(
        value=ih.value, maintenance=ih.maintenance, positions=[PositionAtMark(unit.market, pos, mark, ih.maintenance)]
    )


def unit_unsettled_funding(ws: WorkingState, unit: Unit) -> int:
    """The unit's unsettled funding: the sum of ``positions.unsettled_funding`` over its open
    positions (micro-USDC, each rounded up; positive: it owes), protocol §11.6.

    ``unit_health``'s value already subtracts it; this is for indexes that
    bound a unit's value without recomputing its health.
    """
    if unit.is_cross:
        acct = get_account(ws, unit.account)
        markets = acct.open_markets
    else:
        markets = [unit.market]
    total = 0
    for m in markets:
        pos = ws.get(position_key(m, unit.account))
        if pos is None or pos.size == 0 or pos.is_cross != unit.is_cross:
            continue
        total += unsettled_funding(pos, ws.get(market_state_key(m)))
    return total


def units_in_state(ws: WorkingState) -> list[Unit]:
    """Every unit with an open position or a flat isolated bucket (a deficit), sorted (protocol §12.1).

    Walks the position index of every market: O(open positions).
    """
    chain = ws.get(CHAIN_KEY)
    units: set[Unit] = set()
    for m in range(chain.market_count):
        for addr, pos in market_positions(ws, m):
            if pos.is_cross:
                if pos.size != 0:
                    units.add(Unit(addr, CROSS))
            elif pos.size != 0 or pos.iso_cash != 0:
                units.add(Unit(addr, m))
    return sorted(units)


def unit_of_position(account: bytes, market: int, pos: Position) -> Unit:
    """The unit that holds ``account``'s position in ``market`` (protocol §12.1)."""
    return Unit(account, CROSS if pos.is_cross else market)


def unit_value_for(ws: WorkingState, account: bytes, market: int) -> int:
    """Value of the unit that holds (or would hold) ``account``'s position in ``market`` (protocol §12.1)."""
    pos = ws.get(position_key(market, account))
    unit = Unit(account, CROSS) if pos is None or pos.is_cross else Unit(account, market)
    return unit_health(ws, unit).value
