"""Reading and writing accounts; the reserved system accounts."""

from __future__ import annotations

import msgspec

from clearinghouse.spec.errors import InvalidAmount
from clearinghouse.spec.state.keys import FEE_POOL, INSURANCE_FUND, account_key
from clearinghouse.spec.state.records import Account
from clearinghouse.spec.state.working_state import WorkingState

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)

EMPTY_ACCOUNT = Account(cash=0, open_markets=[], open_orders=0)


def get_account(ws: WorkingState, addr: bytes) -> Account:
    """The account at ``addr`` (an empty one if it never existed; protocol §10.4)."""
    rec = ws.get(account_key(addr))
    return rec if rec is not None else EMPTY_ACCOUNT


def put_account(ws: WorkingState, addr: bytes, acct: Account) -> None:
    """Store ``acct``; an account with nothing left is deleted, keeping state minimal (protocol §10.4)."""
    if acct.cash == 0 and not acct.open_markets and acct.open_orders == 0 and addr not in (INSURANCE_FUND, FEE_POOL):
        ws.delete(account_key(addr))
    else:
        ws.put(account_key(addr), acct)


def checked_i64(value: int, what: str) -> int:
    """Reject a result that would not fit the 64-bit signed slot it is stored in (protocol §2.3).

    Raises:
        InvalidAmount: ``value`` is outside the signed 64-bit range.
    """
    if not (I64_MIN <= value <= I64_MAX):
        raise InvalidAmount(f"{what} would overflow a 64-bit balance")
    return value


def add_cash(ws: WorkingState, addr: bytes, delta: int) -> Account:
    """Add ``delta`` (may be negative) to the account's cross cash; returns the new account (protocol §10.4)."""
    acct = get_account(ws, addr)
    acct = msgspec.structs.replace(acct, cash=checked_i64(acct.cash + delta, "cash"))
    put_account(ws, addr, acct)
    return acct
