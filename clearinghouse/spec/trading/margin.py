"""Margin state queries over the working state: account value, requirements, health.

Cross account value = cash + sum over cross positions of size x mark.
Isolated position value = iso_cash + size x mark. See margin_math for the
rounding of each requirement.
"""

from __future__ import annotations

from dataclasses import dataclass

from clearinghouse.spec.math.margin import initial_margin, maintenance_margin, notional, withdrawal_floor
from clearinghouse.spec.state.accounts import get_account
from clearinghouse.spec.state.keys import market_spec_key, market_state_key, position_key
from clearinghouse.spec.state.records import Position
from clearinghouse.spec.state.working_state import WorkingState


@dataclass(frozen=True)
class CrossHealth:
    """A cross account's numbers at the current mark prices (all micro-USDC; protocol §10.6)."""

    value: int
    maintenance: int
    initial: int
    notional: int


def mark_price(ws: WorkingState, market: int) -> int:
    """The market's current mark price (protocol §10.6)."""
    return ws.get(market_state_key(market)).mark_price


def get_position(ws: WorkingState, market: int, addr: bytes) -> Position | None:
    """``addr``'s stored position in ``market``, or None (protocol §10.6)."""
    return ws.get(position_key(market, addr))


def cross_health(ws: WorkingState, addr: bytes) -> CrossHealth:
    """Value and margin requirements of the account's cross positions (protocol §10.6)."""
    acct = get_account(ws, addr)
    value = acct.cash
    mm = im = ntl = 0
    for market in acct.open_markets:
        pos = get_position(ws, market, addr)
        if pos is None or pos.size == 0 or not pos.is_cross:
            continue
        mark = mark_price(ws, market)
        spec = ws.get(market_spec_key(market))
        value += pos.size * mark
        mm += maintenance_margin(pos.size, mark, spec.max_leverage)
        im += initial_margin(pos.size, mark, pos.leverage)
        ntl += notional(pos.size, mark)
    return CrossHealth(value=value, maintenance=mm, initial=im, notional=ntl)


def isolated_value(pos: Position, mark: int) -> int:
    """An isolated position's value at ``mark``: its bucket plus size x mark (protocol §10.6)."""
    return pos.iso_cash + pos.size * mark


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


def isolated_health(ws: WorkingState, market: int, pos: Position) -> tuple[int, int, int]:
    """(value, maintenance, initial) of an isolated position at the mark (protocol §10.6)."""
    mark = mark_price(ws, market)
    spec = ws.get(market_spec_key(market))
    return (
        isolated_value(pos, mark),
        maintenance_margin(pos.size, mark, spec.max_leverage),
        initial_margin(pos.size, mark, pos.leverage),
    )


def meets_initial_after_increase(ws: WorkingState, addr: bytes, market: int) -> bool:
    """After a position grew: cross accounts meet initial margin; an isolated position is
    above maintenance and the cross side that funded it still meets its own initial margin.

    See protocol §10.6.
    """
    pos = get_position(ws, market, addr)
    if pos is not None and not pos.is_cross and pos.size != 0:
        value, mm, _im = isolated_health(ws, market, pos)
        if value < mm:
            return False
    return meets_cross_initial(ws, addr)
