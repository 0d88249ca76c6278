"""The insurance fund (protocol §12.5): an account at a reserved address that pays deficits.

It starts with its genesis balance, receives rounding residue and backstop
margin, and pays a unit's deficit while it can: what it can pay is its value
(cash plus the positions it took over in backstops, at mark), never below
zero. Its "balance" in evidence events is that value. The fund can fall
below zero when it absorbs a backstopped unit's negative margin or when the
mark moves against positions it took over; either way it then holds
positions, and the ADL step (which visits the fund last) closes them.
Policy ``seed`` follows the article: the fund covers a deficit only in
full; if it cannot, the whole deficit goes to the ADL queue.
"""

from __future__ import annotations

import msgspec

from clearinghouse.spec.state.accounts import add_cash, checked_i64
from clearinghouse.spec.state.keys import INSURANCE_FUND, position_key
from clearinghouse.spec.state.working_state import WorkingState
from clearinghouse.spec.trading.margin import cross_health
from clearinghouse.spec.waterfall.events import InsuranceCover
from clearinghouse.spec.waterfall.units import Unit


def fund_value(ws: WorkingState) -> int:
    """The fund's value at mark: cash plus its positions (the balance events report; protocol §12.5)."""
    return cross_health(ws, INSURANCE_FUND).value


def fund_available(ws: WorkingState) -> int:
    """What the fund can pay now: its value, not below zero (protocol §12.5)."""
    return max(0, fund_value(ws))


def credit_unit(ws: WorkingState, unit: Unit, amount: int) -> None:
    """Add ``amount`` to a unit's bucket: cross cash, or the isolated position's cash (protocol §12.5)."""
    if unit.is_cross:
        add_cash(ws, unit.account, amount)
        return
    key = position_key(unit.market, unit.account)
    pos = ws.get(key)
    ws.put(key, msgspec.structs.replace(pos, iso_cash=checked_i64(pos.iso_cash + amount, "isolated cash")))


def cover_deficit(ws: WorkingState, unit: Unit, deficit: int, *, all_or_nothing: bool) -> InsuranceCover:
    """Pay (part of) ``deficit`` from the fund into the unit; returns the evidence event (protocol §12.5)."""
    before = fund_value(ws)
    available = max(0, before)
    if all_or_nothing:
        paid = deficit if available >= deficit else 0
    else:
        paid = min(deficit, available)
    if paid:
        add_cash(ws, INSURANCE_FUND, -paid)
        credit_unit(ws, unit, paid)
    return InsuranceCover(
        account=unit.account, unit=unit.market, deficit=deficit, paid=paid, fund_before=before, fund_after=before - paid
    )


def sweep_to_fund(ws: WorkingState, unit: Unit, amount: int) -> None:
    """Move a unit's leftover (rounding residue or backstop margin; may be negative) to the fund (protocol §12.5)."""
    if amount:
        credit_unit(ws, unit, -amount)
        add_cash(ws, INSURANCE_FUND, amount)
