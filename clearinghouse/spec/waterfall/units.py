"""Margin units: what liquidation and ADL act on.

A unit is either an account's cross side (all its cross positions and its
cross cash; ``market == CROSS``) or one isolated position with its bucket.
Units are visited in ascending (account, market) order, CROSS last for an
account, so every replayer processes them identically.
"""

from __future__ import annotations

from dataclasses import dataclass

from clearinghouse.spec.math.margin import maintenance_margin
from clearinghouse.spec.state.accounts import get_account
from clearinghouse.spec.state.keys import CHAIN_KEY, market_spec_key, market_state_key, position_key, position_prefix
from clearinghouse.spec.state.records import Position
from clearinghouse.spec.state.working_state import WorkingState
from clearinghouse.spec.waterfall.events import CROSS, PositionSnapshot


@dataclass(frozen=True, order=True, slots=True)
class Unit:
    account: bytes
    market: int

    @property
    def is_cross(self) -> bool:
        return self.market == CROSS


@dataclass
class UnitHealth:
    """Value and maintenance margin of a unit at the marks, with its open positions."""

    value: int
    maintenance: int
    positions: list[tuple[int, Position, int, int]]
    """(market, position, mark, maintenance margin) for each open position, ascending market."""

    def snapshots(self) -> list[PositionSnapshot]:
        return [PositionSnapshot(market=m, size=p.size, cost=p.cost, mark=mark) for m, p, mark, _mm in self.positions]


def unit_health(ws: WorkingState, unit: Unit) -> UnitHealth:
    if unit.is_cross:
        acct = get_account(ws, unit.account)
        value = acct.cash
        total_mm = 0
        positions = []
        for m in acct.open_markets:
            pos = ws.get(position_key(m, unit.account))
            if pos is None or pos.size == 0 or not pos.is_cross:
                continue
            mark = ws.get(market_state_key(m)).mark_price
            mm = maintenance_margin(pos.size, mark, ws.get(market_spec_key(m)).max_leverage)
            value += pos.size * mark
            total_mm += mm
            positions.append((m, pos, mark, mm))
        return UnitHealth(value=value, maintenance=total_mm, positions=positions)
    pos = ws.get(position_key(unit.market, unit.account))
    if pos is None:
        return UnitHealth(value=0, maintenance=0, positions=[])
    if pos.size == 0:
        return UnitHealth(value=pos.iso_cash, maintenance=0, positions=[])
    mark = ws.get(market_state_key(unit.market)).mark_price
    mm = maintenance_margin(pos.size, mark, ws.get(market_spec_key(unit.market)).max_leverage)
    return UnitHealth(value=pos.iso_cash + pos.size * mark, maintenance=mm, positions=[(unit.market, pos, mark, mm)])


def units_in_state(ws: WorkingState) -> list[Unit]:
    """Every unit with an open position or a flat isolated bucket (a deficit), sorted.

    Walks the position index of every market: O(open positions).
    """
    chain = ws.get(CHAIN_KEY)
    units: set[Unit] = set()
    for m in range(chain.market_count):
        for key in ws.index.iter_prefix(position_prefix(m)):
            pos = ws.get(key)
            addr = key[5:]
            if pos.is_cross:
                if pos.size != 0:
                    units.add(Unit(addr, CROSS))
            elif pos.size != 0 or pos.iso_cash != 0:
                units.add(Unit(addr, m))
    return sorted(units)


def unit_of_position(account: bytes, market: int, pos: Position) -> Unit:
    return Unit(account, CROSS if pos.is_cross else market)


def unit_value_for(ws: WorkingState, account: bytes, market: int) -> int:
    """Value of the unit that holds (or would hold) ``account``'s position in ``market``."""
    pos = ws.get(position_key(market, account))
    unit = Unit(account, CROSS) if pos is None or pos.is_cross else Unit(account, market)
    return unit_health(ws, unit).value
