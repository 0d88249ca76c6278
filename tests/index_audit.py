"""Test-only: the full scan that proves the liquidation index never misses a unit (issue 10).

``audited()`` wraps the index lookup of steps 40 and 50 (``margin_index`` as imported by
``spec.waterfall.liquidation`` and ``spec.waterfall.adl``), in the tests only, never in
consensus code. Each time a step asks for the index, right after the index refreshed, the
wrapper walks every unit in state (``units_in_state``) and checks that:

* the index's members are exactly the units in state (the insurance fund aside): the walk's
  later additions depend on membership;
* every unit that is liquidatable (positions, value < maintenance) or below zero is watched,
  so the step visits it;
* every unit the index holds as healthy is inside all its bands at the current keys.

With ``full_walk`` set, the step walks every unit in state (plus what the index would add),
which is the rule's own definition: ``test_state_machine`` runs each block's dry run that way and
its real run through the index, and asserts both give the same changes and events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from clearinghouse.spec.math.bands import crossed
from clearinghouse.spec.math.liquidation import is_liquidatable
from clearinghouse.spec.state.keys import CHAIN_KEY
from clearinghouse.spec.state.working_state import WorkingState
from clearinghouse.spec.waterfall import adl, liquidation
from clearinghouse.spec.waterfall import unit_index as ui
from clearinghouse.spec.waterfall.units import Unit, unit_health, units_in_state

AUDIT = {"scans": 0, "units_scanned": 0, "flagged": 0, "full_walks": 0}
"""Counters of what the audit saw (a test asserts it ran and flagged something)."""


class IndexMiss(AssertionError):
    """The liquidation index missed a unit (or holds a stale one): a soundness bug."""


def audit_index(ws: WorkingState, index: ui.UnitIndex) -> None:
    """The full scan (module docstring). Raises ``IndexMiss``."""
    AUDIT["scans"] += 1
    in_state = [u for u in units_in_state(ws) if u != ui.FUND_UNIT]
    members = set(index.bands) | set(index.watched)
    if members != set(in_state):
        raise IndexMiss(f"index members differ from units in state: {members ^ set(in_state)}")
    drivers = {m: ui.market_driver(ws, m) for m in range(ws.get(CHAIN_KEY).market_count)}
    for unit in in_state:
        AUDIT["units_scanned"] += 1
        health = unit_health(ws, unit)
        flagged = (bool(health.positions) and is_liquidatable(health.value, health.maintenance)) or health.value < 0
        if flagged:
            AUDIT["flagged"] += 1
            if unit not in index.watched:
                raise IndexMiss(f"{unit} is liquidatable or below zero but not watched: {health}")
        for band in index.bands.get(unit, []):
            d = drivers[band.market]
            if crossed(band, d.long_key if band.is_long else d.short_key):
                raise IndexMiss(f"{unit} holds a crossed band {band} after refresh")


class FullWalk:
    """The index with ``visit`` extended to every unit in state: the full walk of the rule."""

    def __init__(self, index: ui.UnitIndex, ws: WorkingState) -> None:
        self.index = index
        self.everyone = [u for u in units_in_state(ws) if u != ui.FUND_UNIT]
        self.watched = index.watched
        self.is_member = index.is_member

    def visit(self, first: Iterable[Unit], eligible: Callable[[Unit], bool]) -> Iterator[Unit]:
        AUDIT["full_walks"] += 1
        return self.index.visit(set(first) | set(self.everyone), eligible)


MODE = {"full_walk": False}


def _wrapped(ws: WorkingState) -> Any:
    index = ui.margin_index(ws)
    audit_index(ws, index)
    return FullWalk(index, ws) if MODE["full_walk"] else index


@contextmanager
def audited() -> Iterator[None]:
    """Run the enclosed transitions with the audit on (tests only)."""
    saved = (liquidation.margin_index, adl.margin_index)
    liquidation.margin_index = _wrapped  # type: ignore[assignment]
    adl.margin_index = _wrapped  # type: ignore[assignment]
    try:
        yield
    finally:
        liquidation.margin_index, adl.margin_index = saved


@contextmanager
def full_walk() -> Iterator[None]:
    """Inside ``audited()``: steps 40 and 50 walk every unit in state (the reference)."""
    MODE["full_walk"] = True
    try:
        yield
    finally:
        MODE["full_walk"] = False
