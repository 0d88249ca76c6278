"""The invariants of protocol §1.1, checked on any state (a store, or a working state).

Used by ``clearinghouse audit``, by the tests after every block, and by the
stateful property test. Each check returns a list of violations (plain
sentences with the numbers); an empty list means the state is sound.

* conservation: deposits - withdrawals = sum of all cash (cross cash of every
  account, the insurance fund and fee pool included, plus every isolated
  bucket, plus every market's ``funding_pool``: funding paid in by settled
  payers and not yet drawn by receivers, protocol §11.6);
* funding exactness (protocol §11.6): per market, ``funding_dust_e9`` is in
  [0, 10^9) and funding_pool x 10^9 - funding_dust_e9 + sum over open
  positions of size x (funding_index - funding_entry) = 0 exactly: the
  unsettled funding of the open positions is exactly what the pool holds for
  them, so lazy funding stays zero-sum (a size change without settlement breaks it
  whenever the lots moved carry different entries);
* open interest: per market, total long size = total short size = the
  market's recorded open interest;
* solvency: no cross account and no isolated position has negative value at
  the marks (after end-of-block processing); the insurance fund only as the
  bounded exception of protocol §12.12 (every other unit with an open
  position already haircut to zero);
* bookkeeping: every account's open_markets lists exactly its non-zero
  positions, and open_orders counts its resting and trigger orders;
* the book is not crossed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from clearinghouse.spec.constants import CROSS
from clearinghouse.spec.state.keys import (
    CHAIN_KEY,
    INSURANCE_FUND,
    NS_ACCOUNT,
    NS_MARKET_STATE,
    NS_ORDER,
    NS_POSITION,
    NS_TRIGGER,
    book_side_prefix,
    key_account,
    key_market,
    market_state_key,
    position_owner,
    record_type,
)
from clearinghouse.spec.waterfall.units import Unit, unit_health


@dataclass
class Snapshot:
    """Decoded records of the namespaces the invariants need, from any key/value source."""

    chain: Any
    accounts: dict[bytes, Any]
    positions: dict[tuple[int, bytes], Any]
    orders: list[tuple[bytes, Any]]
    triggers: list[tuple[bytes, Any]]
    markets: dict[int, Any]


def snapshot(items: Iterable[tuple[bytes, bytes]]) -> Snapshot:
    chain = None
    accounts: dict[bytes, Any] = {}
    positions: dict[tuple[int, bytes], Any] = {}
    orders: list[tuple[bytes, Any]] = []
    triggers: list[tuple[bytes, Any]] = []
    markets: dict[int, Any] = {}
    for key, raw in items:
        ns = key[:1]
        if ns not in (NS_ACCOUNT, NS_POSITION, NS_ORDER, NS_TRIGGER, NS_MARKET_STATE) and key != CHAIN_KEY:
            continue
        rec = msgspec.msgpack.decode(raw, type=record_type(key))
        if key == CHAIN_KEY:
            chain = rec
        elif ns == NS_ACCOUNT:
            accounts[key_account(key)] = rec
        elif ns == NS_POSITION:
            positions[(key_market(key), position_owner(key))] = rec
        elif ns == NS_MARKET_STATE:
            markets[key_market(key)] = rec
        elif ns == NS_ORDER:
            orders.append((key, rec))
        else:
            triggers.append((key, rec))
    return Snapshot(
        chain=chain, accounts=accounts, positions=positions, orders=orders, triggers=triggers, markets=markets
    )


def check_conservation(s: Snapshot) -> list[str]:
    total = (
        sum(a.cash for a in s.accounts.values())
        + sum(p.iso_cash for p in s.positions.values())
        + sum(ms.funding_pool for ms in s.markets.values())
    )
    expected = s.chain.deposits - s.chain.withdrawals
    if total != expected:
        return [
            f"conservation: deposits - withdrawals = {expected} ({_usdc(expected)} USDC), but cash in state = {total} "
            f"({_usdc(total)} USDC; difference {_usdc(total - expected)} USDC)"
        ]
    return []


def check_funding(s: Snapshot) -> list[str]:
    """Lazy funding is exactly zero-sum (protocol §11.6): per market,
    pool x 10^9 - dust + sum of size x (index - entry) over open positions = 0, dust in [0, 10^9)."""
    from clearinghouse.spec.constants import RATE_SCALE

    owed: Counter = Counter()
    for (m, _a), p in s.positions.items():
        if p.size != 0:
            owed[m] += p.size * (s.markets[m].funding_index - p.funding_entry)
    out = []
    for m, ms in sorted(s.markets.items()):
        if not 0 <= ms.funding_dust_e9 < RATE_SCALE:
            out.append(f"funding: market {m} dust {ms.funding_dust_e9} outside [0, 10^9)")
        balance = ms.funding_pool * RATE_SCALE - ms.funding_dust_e9 + owed[m]
        if balance != 0:
            out.append(
                f"funding: market {m} pool {ms.funding_pool} x 10^9 - dust {ms.funding_dust_e9} + unsettled {owed[m]} "
                f"= {balance} (10^-9 micro-USDC), not 0"
            )
    return out


def check_open_interest(s: Snapshot, view: Any) -> list[str]:
    longs: Counter = Counter()
    shorts: Counter = Counter()
    for (m, _a), p in s.positions.items():
        if p.size > 0:
            longs[m] += p.size
        elif p.size < 0:
            shorts[m] -= p.size
    out = []
    for m in range(s.chain.market_count):
        recorded = view.get(market_state_key(m)).open_interest
        if longs[m] != shorts[m] or longs[m] != recorded:
            out.append(f"open interest: market {m} longs {longs[m]}, shorts {shorts[m]}, recorded {recorded}")
    return out


def check_solvency(s: Snapshot, view: Any) -> list[str]:
    out = []
    units = set()
    for (m, addr), p in s.positions.items():
        if p.is_cross:
            if p.size != 0:
                units.add(Unit(addr, CROSS))
        elif p.size != 0 or p.iso_cash != 0:
            units.add(Unit(addr, m))
    for addr in s.accounts:
        units.add(Unit(addr, CROSS))
    fund_value = 0
    with_positions = {addr for (_m, addr), p in s.positions.items() if p.size != 0}
    still_worth: list[Unit] = []  # haircut pool units (protocol §12.7) that still hold value
    for unit in sorted(units):
        health = unit_health(view, unit)
        value = health.value
        if unit.account == INSURANCE_FUND and unit.is_cross:
            fund_value = value
        elif value < 0:
            where = "cross" if unit.is_cross else f"isolated market {unit.market}"
            out.append(f"solvency: 0x{unit.account.hex()} {where} value {value} ({_usdc(value)} USDC) < 0")
        elif value > 0 and (health.positions or (unit.is_cross and unit.account in with_positions)):
            still_worth.append(unit)
    # The one bounded exception (protocol §12.12): the fund may end below zero only once its
    # haircut has taken every account holding an open position down to zero value.
    if fund_value < 0 and still_worth:
        out.append(
            f"solvency: insurance fund value {fund_value} < 0 while {len(still_worth)} unit(s) with open positions keep value "
            f"(first 0x{still_worth[0].account.hex()})"
        )
    return out


def _usdc(micro: int) -> str:
    from clearinghouse.tools.units import micro_to_usdc

    return micro_to_usdc(micro, grouping=True)


def check_bookkeeping(s: Snapshot) -> list[str]:
    out = []
    open_markets: dict[bytes, list[int]] = defaultdict(list)
    for (m, addr), p in sorted(s.positions.items()):
        if p.size != 0:
            open_markets[addr].append(m)
    order_counts: Counter = Counter(rec.owner for _k, rec in s.orders + s.triggers)
    for addr, acct in s.accounts.items():
        if acct.open_markets != open_markets.get(addr, []):
            out.append(
                f"bookkeeping: 0x{addr.hex()} open_markets {acct.open_markets} != positions {open_markets.get(addr, [])}"
            )
        if acct.open_orders != order_counts.get(addr, 0):
            out.append(
                f"bookkeeping: 0x{addr.hex()} open_orders {acct.open_orders} != {order_counts.get(addr, 0)} orders in the book"
            )
    for addr in open_markets:
        if addr not in s.accounts:
            out.append(f"bookkeeping: 0x{addr.hex()} has positions but no account record")
    return out


def check_book_not_crossed(s: Snapshot, view: Any) -> list[str]:
    out = []
    for m in range(s.chain.market_count):
        bid_key = view.index.first(book_side_prefix(m, True)) if hasattr(view, "index") else None
        ask_key = view.index.first(book_side_prefix(m, False)) if hasattr(view, "index") else None
        if bid_key and ask_key:
            bid, ask = view.get(bid_key).price, view.get(ask_key).price
            if bid >= ask:
                out.append(f"book: market {m} crossed (best bid {bid} >= best ask {ask})")
    return out


def check_all(store: Any, view: Any | None = None) -> list[str]:
    """Every invariant on a committed store (``view`` defaults to the store's engine view)."""
    if view is None:
        from clearinghouse.chain.engine import Engine

        view = Engine(store).view()
    s = snapshot(store.iter_all())
    if s.chain is None:
        return ["chain: no chain record (empty store)"]
    return (
        check_conservation(s)
        + check_funding(s)
        + check_open_interest(s, view)
        + check_solvency(s, view)
        + check_bookkeeping(s)
        + check_book_not_crossed(s, view)
    )
