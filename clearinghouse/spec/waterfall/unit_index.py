"""The liquidation index: which units steps 40 and 50 need to look at (protocol §12.3, §12.7).

An implementation detail, like the key indexes of ``spec.state.working_state``: it is derived
from state (rebuilt from the store whenever an engine starts or abandons an execution it built
it in), never committed, and it never decides anything. Steps 40 and 50 visit units in
ascending unit order (protocol §12.1) and act on a unit only after computing its health at
that moment, exactly as a walk over every unit would; the index only lets them pass over units
that cannot qualify, so the set of units acted on, their order, the events and the state root
are those of the full walk.

What it keeps, for every unit in state (``units_in_state``; the insurance fund aside: step 40
never liquidates it and step 50 always visits it last):

* a healthy unit (value >= maintenance margin, at least one position): one ``Band`` per
  position (``spec.math.bands``): its slack ``value - maintenance`` is split over its
  positions in proportion to notional, and each position may see its market's key
  (``market_driver``) move against it by what its share pays for. While no edge is crossed and
  the unit's own records are unchanged it cannot be liquidatable, nor below zero;
* a flat isolated bucket at or above zero: nothing (its value does not depend on prices);
* every other unit (liquidatable, below zero, or with a budget below the rounding reserve) is
  *watched*: evaluated at every step.

Touched units: every write to an account record (the cross unit) or a position record (that
unit and the account's cross unit) is logged by ``WorkingState.put``, including writes later
undone (evaluating a unit too often costs time, never correctness). ``refresh`` re-evaluates
the touched units, the watched units and the units whose edge the current keys crossed; after
it, every unit not watched is healthy now. While a step runs, units touched by an earlier
unit's liquidation (a maker filled, a counterparty closed) are re-examined at their turn if
they come later in unit order and were in state when the step began (``visit``), as the full
walk would.

Engines: the index lives in ``KeyIndex.margin``. An engine that abandons an execution keeps
the index (its bands are facts about records, valid whatever the marks) and re-evaluates
every unit the abandoned execution touched; an index first built inside an abandoned
execution is dropped. A restarted process rebuilds it from the store on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from sortedcontainers import SortedList, SortedSet

from clearinghouse.spec.constants import CROSS
from clearinghouse.spec.math.bands import Band, adverse_room, band_edge, split_slack
from clearinghouse.spec.state.keys import (
    CHAIN_KEY,
    INSURANCE_FUND,
    NS_ACCOUNT,
    key_account,
    key_market,
    market_spec_key,
    market_state_key,
    position_key,
    position_owner,
)
from clearinghouse.spec.state.records import Account, Position
from clearinghouse.spec.state.working_state import WorkingState
from clearinghouse.spec.waterfall.units import Unit, UnitHealth, unit_health, units_in_state

FUND_UNIT = Unit(INSURANCE_FUND, CROSS)


class MarketDriver(NamedTuple):
    """A market's keys for the band test (``spec.math.bands``): ``long_key`` falls and
    ``short_key`` rises when the market moves against that side; a position of |size| ``a``
    loses at most ``ceil(a x adverse key move / den) + reserve`` of value minus maintenance (protocol §12.3)."""

    long_key: int
    short_key: int
    den: int
    reserve: int


FUNDING_SCALE = 10**9
"""Funding accrues in 10^-9 micro-USDC per lot (protocol §11.5): the keys are in that scale."""


def market_driver(ws: WorkingState, market: int) -> MarketDriver:
    """The one place that says what moves a position's health besides its own records.

    A position of size ``s`` has ``value = s x mark - ceil(s x (I - I_entry) / 10^9)`` (the second
    term: unsettled funding at the market's cumulative funding index ``I``, rounded against the
    account) and ``MM = ceil(|s| x mark / 2L)`` (``L`` the market's maximum leverage). Its loss
    of ``value - MM`` between two moments is at most ``ceil(|s| x adverse / den) + reserve`` with
    long key ``(2L - 1) x 10^9 x mark - 2L x I``, short key ``(2L + 1) x 10^9 x mark - 2L x I``,
    ``den = 2L x 10^9`` and ``reserve = 1``: the mark part is ``ceil(s (p - p') (2L - 1) / 2L)``
    for a long (``ceil`` is subadditive), ``ceil(a (p' - p) (2L + 1) / 2L)`` for a short of size
    ``-a``, the funding part ``ceil(s dI / 10^9)``, and two ceilings add up to at most one more
    than the ceiling of their sum (``spec.math.bands``; tests/test_bands.py checks it).

    Funding is lazy (protocol §11.6): the hourly step moves ``I`` without writing any position, so
    ``I`` is part of the key: an hour's index step moves every band edge of the market like a mark
    move would, and only the units whose band it crosses are re-evaluated.
    """
    state = ws.get(market_state_key(market))
    mark = state.mark_price
    lev = ws.get(market_spec_key(market)).max_leverage
    index = state.funding_index  # the market's cumulative funding index (10^-9 micro-USDC per lot)
    return MarketDriver(
        long_key=(2 * lev - 1) * FUNDING_SCALE * mark - 2 * lev * index,
        short_key=(2 * lev + 1) * FUNDING_SCALE * mark - 2 * lev * index,
        den=2 * lev * FUNDING_SCALE,
        reserve=1,
    )


def unit_bands(health: UnitHealth, drivers: dict[int, MarketDriver]) -> list[Band]:
    """One band per open position of a healthy unit (value >= maintenance): the slack split in
    proportion to notional at the mark, each share turned into room on its market's key (protocol §12.3)."""
    slack = health.value - health.maintenance
    weights = [abs(p.size) * mark for _m, p, mark, _mm in health.positions]
    bands = []
    for (m, p, _mark, _mm), budget in zip(health.positions, split_slack(slack, weights)):
        d = drivers[m]
        is_long = p.size > 0
        room = adverse_room(abs(p.size), budget, d.den, d.reserve)
        bands.append(Band(m, is_long, band_edge(is_long, d.long_key if is_long else d.short_key, room)))
    return bands


def units_of_key(key: bytes) -> tuple[Unit, ...]:
    """The units a write to ``key`` (an account or a position record) can change (protocol §12.3)."""
    if key[:1] == NS_ACCOUNT:
        return (Unit(key_account(key), CROSS),)
    account = position_owner(key)
    return (Unit(account, key_market(key)), Unit(account, CROSS))


class UnitIndex:
    """Bands of healthy units per (market, side), watched units, and the touch log (module docstring)
    (protocol §12.3)."""

    def __init__(self) -> None:
        self.bands: dict[Unit, tuple[Band, ...]] = {}
        """Every unit in state that is not watched (the fund aside), with its bands."""
        self.watched: SortedSet = SortedSet()
        """Units evaluated at every step: liquidatable, below zero, or without a safe band."""
        self._edges: dict[tuple[int, bool], SortedList] = {}
        """(market, is_long) -> sorted (t, account, unit market), crossed iff t < x: a long's
        t is -edge and x is -key now; a short's t is edge and x is key now."""
        self.touched: list[bytes] = []
        """Account and position keys written since the last ``refresh`` (the touch log)."""
        self.uncommitted: set[bytes] = set()
        """Account and position keys written since the last committed block."""
        self.fresh = True
        """Built inside an execution not committed yet (dropped if that execution is abandoned)."""
        self.evaluations = 0
        """Units evaluated so far (for benchmarks and tests)."""

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def build(cls, ws: WorkingState) -> UnitIndex:
        """Evaluate every unit in state (O(units)); done once per process, on first use."""
        index = cls()
        drivers = index._drivers(ws)
        for unit in units_in_state(ws):
            index._evaluate(ws, unit, drivers)
        return index

    def touch(self, key: bytes, old: Account | Position | None, new: Account | Position | None) -> None:
        """``WorkingState.put`` wrote an account or position record, ``old`` -> ``new`` (None: absent).

        A unit's health reads an account's cash and open markets, never its order count: a write
        that changes only ``open_orders`` (an order placed, cancelled or filled away) leaves the unit
        where the index has it, so it is not marked for re-evaluation.
        """
        if (
            isinstance(old, Account)
            and isinstance(new, Account)
            and old.cash == new.cash
            and old.open_markets == new.open_markets
        ):
            return
        self.touched.append(key)
        self.uncommitted.add(key)

    def committed(self) -> None:
        """The engine committed the block: what it wrote is state now."""
        self.uncommitted.clear()
        self.fresh = False

    def abandon(self) -> bool:
        """The engine abandoned an execution: keep the index (False: drop it, it was built from
        uncommitted state) and re-evaluate, at the next refresh, every unit that execution touched."""
        if self.fresh:
            return False
        self.touched.extend(sorted(self.uncommitted))
        self.uncommitted.clear()
        return True

    # ------------------------------------------------------------ queries
    def is_member(self, unit: Unit) -> bool:
        """Was ``unit`` in state (``units_in_state``, the fund aside) at the last refresh?"""
        return unit in self.bands or unit in self.watched

    # ------------------------------------------------------------ evaluation
    def _drivers(self, ws: WorkingState) -> dict[int, MarketDriver]:
        return {m: market_driver(ws, m) for m in range(ws.get(CHAIN_KEY).market_count)}

    def _forget(self, unit: Unit) -> None:
        bands = self.bands.pop(unit, None)
        if bands:
            for b in bands:
                self._edges[(b.market, b.is_long)].remove(self._edge_item(unit, b))
        self.watched.discard(unit)

    @staticmethod
    def _edge_item(unit: Unit, band: Band) -> tuple[int, bytes, int]:
        assert band.edge is not None
        return (-band.edge if band.is_long else band.edge, unit.account, unit.market)

    def _evaluate(self, ws: WorkingState, unit: Unit, drivers: dict[int, MarketDriver]) -> None:
        """Recompute ``unit``'s entry from state now."""
        self.evaluations += 1
        self._forget(unit)
        if unit == FUND_UNIT:
            return
        health = unit_health(ws, unit)
        if unit.is_cross:
            if not health.positions:
                return  # no cross position: not a unit in state
        else:
            pos = ws.get(position_key(unit.market, unit.account))
            if pos is None or pos.is_cross or (pos.size == 0 and pos.iso_cash == 0):
                return  # not a unit in state
        if not health.positions:
            if health.value < 0:
                self.watched.add(unit)
            else:
                self.bands[unit] = ()
            return
        if health.value < health.maintenance:
            self.watched.add(unit)
            return
        bands = unit_bands(health, drivers)
        if any(b.edge is None for b in bands):
            self.watched.add(unit)
            return
        self.bands[unit] = tuple(bands)
        for b in bands:
            edges = self._edges.get((b.market, b.is_long))
            if edges is None:
                edges = self._edges[(b.market, b.is_long)] = SortedList()
            edges.add(self._edge_item(unit, b))

    def refresh(self, ws: WorkingState) -> None:
        """Bring the index up to the state and prices now: re-evaluate the touched units, the
        watched units and the units whose band edge the current keys crossed. Afterwards every
        unit in state that is not watched is healthy at the current prices."""
        drivers = self._drivers(ws)
        todo: set[Unit] = set(self.watched)
        for key in self.touched:
            todo.update(units_of_key(key))
        self.touched.clear()
        for (market, is_long), edges in self._edges.items():
            d = drivers[market]
            x = -d.long_key if is_long else d.short_key
            for _t, account, unit_market in edges.irange(maximum=(x,), inclusive=(True, False)):
                todo.add(Unit(account, unit_market))
        for unit in sorted(todo):
            self._evaluate(ws, unit, drivers)

    def visit(self, first: Iterable[Unit], eligible: Callable[[Unit], bool]) -> Iterator[Unit]:
        """Yield ``first`` in ascending unit order; a unit touched while the caller works on an
        earlier one joins the walk if it comes after the current unit and ``eligible`` says so.

        The caller evaluates each yielded unit itself: the walk yields every unit whose health
        could differ from what the last refresh found, in the order of the full walk.
        """
        pending = SortedSet(first)
        seen = len(self.touched)
        current: Unit | None = None
        while True:
            while seen < len(self.touched):
                for unit in units_of_key(self.touched[seen]):
                    if (current is None or unit > current) and eligible(unit):
                        pending.add(unit)
                seen += 1
            if not pending:
                return
            current = pending.pop(0)
            yield current


def margin_index(ws: WorkingState) -> UnitIndex:
    """The working state's liquidation index, built on first use and refreshed to now (protocol §12.3)."""
    index: UnitIndex | None = ws.index.margin
    if index is None:
        index = UnitIndex.build(ws)
        ws.index.margin = index
    else:
        index.refresh(ws)
    return index
