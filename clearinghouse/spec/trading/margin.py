"""Margin state queries over the working state: account value, requirements, health.

Cross account value = cash + sum over cross positions of (size x mark - unsettled funding).
Isolated position value = iso_cash + size x mark - unsettled funding.
Unsettled funding (protocol §11.6, ``positions.unsettled_funding``) is rounded
up exactly as its settlement will be, so settling never moves a value. See
margin_math for the rounding of each requirement. ``cross_health`` and
``isolated_health`` are the one source of value and margin: the waterfall's
``units.unit_health`` is built from them.
"""

from __future__ import annotations

from typing import NamedTuple

from clearinghouse.spec.math.margin import initial_margin, maintenance_margin, notional, withdrawal_floor
from clearinghouse.spec.state.access import get_market_spec, get_market_state, get_position
from clearinghouse.spec.state.accounts import get_account
from clearinghouse.spec.state.records import Position
from clearinghouse.spec.state.working_state import WorkingState
from clearinghouse.spec.trading.positions import unsettled_funding


class PositionAtMark(NamedTuple):
    """One open position inside a health figure, at the mark it was valued at (protocol §10.6)."""

    market: int
    position: Position
    mark: int
    maintenance: int


class CrossHealth(NamedTuple):
    """A cross account's numbers at the current mark prices (all micro-USDC), unsettled funding
    counted (protocol §10.6, §11.6)."""

    value: int
    maintenance: int
    initial: int
    notional: int
    positions: list[PositionAtMark]
    """Its open cross positions, ascending market."""


class IsolatedHealth(NamedTuple):
    """An isolated position's value and requirements at the mark, unsettled funding counted (protocol §10.6)."""

    value: int
    maintenance: int
    initial: int
    funding: int


def cross_health(ws: WorkingState, addr: bytes, *, initial: bool = True) -> CrossHealth:
    """Value and margin requirements of the account's cross positions (protocol §10.6, §11.6).

    ``initial=False`` skips initial margin and notional (both left 0): liquidation and ADL
    (``units.unit_health``) need only value and maintenance, for every unit of every block.
    """
    acct = get_account(ws, addr)
    value = acct.cash
    mm = im = ntl = 0
    held = []
    for market in acct.open_markets:
        pos = get_position(ws, market, addr)
        if pos is None or pos.size == 0 or not pos.is_cross:
            continue
        state = get_market_state(ws, market)
        mark = state.mark_price
        spec = get_market_spec(ws, market)
        pos_mm = maintenance_margin(pos.size, mark, spec.max_leverage)
        value += pos.size * mark
        if pos.funding_entry != state.funding_index:  # else nothing is owed
            value -= unsettled_funding(pos, state)
        mm += pos_mm
        if initial:
            im += initial_margin(pos.size, mark, pos.leverage)
            ntl += notional(pos.size, mark)
        held.append(PositionAtMark(market, pos, mark, pos_mm))
    return CrossHealth(value=value, maintenance=mm, initial=im, notional=ntl, positions=held)


def isolated_value(pos: Position, mark: int, funding: int) -> int:
    """iso_cash + size x mark - unsettled funding (protocol §10.6, §11.6)."""
    return pos.iso_cash + pos.size * mark - funding


def withdrawable(ws: WorkingState, addr: bytes) -> int:
    """The most cross collateral that can leave the account (protocol §9.2, §10.6), never negative.

    Account value after the withdrawal must stay >= max(initial margin,
    10% of total cross notional). Cash alone is not a limit: a leveraged long
    has negative cash (it paid the notional) and is still worth value.
    """
    health = cross_health(ws, addr)
    floor = withdrawal_floor(health.notional, health.initial)
    return max(0, health.value - floor)


def meets_cross_initial(ws: WorkingState, addr: bytes, extra_initial: int = 0) -> bool:
    """Cross value covers cross initial margin (plus ``extra_initial`` for an order about to rest; protocol §10.6)."""
    health = cross_health(ws, addr)
    return health.value >= health.initial + extra_initial


def isolated_health(ws: WorkingState, market: int, pos: Position) -> IsolatedHealth:
    """Value, maintenance and initial margin of an isolated position at the mark (unsettled funding
    counted; protocol §10.6, §11.6)."""
    state = get_market_state(ws, market)
    mark = state.mark_price
    spec = get_market_spec(ws, market)
    funding = unsettled_funding(pos, state)
    return IsolatedHealth(
        value=isolated_value(pos, mark, funding),
        maintenance=maintenance_margin(pos.size, mark, spec.max_leverage),
        initial=initial_margin(pos.size, mark, pos.leverage),
        funding=funding,
    )


def meets_initial_after_increase(ws: WorkingState, addr: bytes, market: int) -> bool:
    """After a position grew: cross accounts meet initial margin; an isolated position is
    above maintenance and the cross side that funded it still meets its own initial margin.

    See protocol §10.6.
    """
    pos = get_position(ws, market, addr)
    if pos is not None and not pos.is_cross and pos.size != 0:
        health = isolated_health(ws, market, pos)
        if health.value < health.maintenance:
            return False
    return meets_cross_initial(ws, addr)
