"""Resting and trigger order storage: records, locators, client ids, counts.

The book itself is the ordered ``O`` namespace (``keys.order_key``): ascending
keys are price-time priority. Every open order also has a locator (by order
id) and, if it has one, a client-id entry; the owner's ``open_orders`` count
bounds how many it may have.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from clearinghouse.spec.constants import MAX_OPEN_ORDERS
from clearinghouse.spec.errors import DuplicateCloid, LimitExceeded, OrderNotFound
from clearinghouse.spec.state.access import get_chain, get_cloid_locator, get_order_locator
from clearinghouse.spec.state.accounts import get_account, put_account
from clearinghouse.spec.state.keys import CHAIN_KEY, U64_MAX, cloid_key, key_market, order_loc_key
from clearinghouse.spec.state.records import CloidLocator, Order, OrderLocator, Trigger
from clearinghouse.spec.state.working_state import WorkingState


def next_oid(ws: WorkingState) -> int:
    """Allocate the next order id (global, increasing: it is also time priority).

    The counter is a u64: once it reaches ``U64_MAX`` no order can be placed
    (``LIMIT_EXCEEDED``, protocol §2.3).

    Raises:
        LimitExceeded: the order-id counter is exhausted.
    """
    chain = get_chain(ws)
    if chain.next_oid >= U64_MAX:
        raise LimitExceeded("order ids are exhausted")
    ws.put(CHAIN_KEY, msgspec.structs.replace(chain, next_oid=chain.next_oid + 1))
    return chain.next_oid


def check_cloid_free(ws: WorkingState, owner: bytes, cloid: int) -> None:
    """Refuse a client order id the owner already uses on an open order (0 means none; protocol §10.3).

    Raises:
        DuplicateCloid: ``cloid`` is in use.
    """
    if cloid and get_cloid_locator(ws, owner, cloid) is not None:
        raise DuplicateCloid(f"client order id {cloid} is already used by an open order")


def store_order(ws: WorkingState, key: bytes, order: Order | Trigger) -> None:
    """Insert a new open order (resting or trigger) with its locator and client id (protocol §10.3).

    Raises:
        LimitExceeded: the owner already has ``MAX_OPEN_ORDERS`` open orders.
    """
    acct = get_account(ws, order.owner)
    if acct.open_orders >= MAX_OPEN_ORDERS:
        raise LimitExceeded(f"at most {MAX_OPEN_ORDERS} open orders per account")
    ws.put(key, order)
    ws.put(order_loc_key(order.oid), OrderLocator(key=key))
    if order.cloid:
        ws.put(cloid_key(order.owner, order.cloid), CloidLocator(oid=order.oid))
    put_account(ws, order.owner, msgspec.structs.replace(acct, open_orders=acct.open_orders + 1))


def remove_order(ws: WorkingState, key: bytes, order: Order | Trigger) -> None:
    """Delete an open order and everything that points at it (protocol §10.3)."""
    ws.delete(key)
    ws.delete(order_loc_key(order.oid))
    if order.cloid:
        ws.delete(cloid_key(order.owner, order.cloid))
    acct = get_account(ws, order.owner)
    put_account(ws, order.owner, msgspec.structs.replace(acct, open_orders=acct.open_orders - 1))


class FoundOrder(NamedTuple):
    """An open order found by id or client id: its book key and its record (protocol §10.3)."""

    key: bytes
    order: Order | Trigger
    """A resting order, or a waiting trigger order (the id locator points at either)."""


def find_order(ws: WorkingState, owner: bytes, market: int, oid: int) -> FoundOrder:
    """The open order ``oid`` of ``owner`` in ``market`` (its key and record; protocol §10.3).

    Raises:
        OrderNotFound: no open order ``oid``, or it is another account's or in another market.
    """
    loc = get_order_locator(ws, oid)
    if loc is None:
        raise OrderNotFound(f"no open order {oid}")
    order = ws.get(loc.key)
    if order is None or order.owner != owner or key_market(loc.key) != market:
        raise OrderNotFound(f"no open order {oid} of this account in market {market}")
    return FoundOrder(loc.key, order)


def find_by_cloid(ws: WorkingState, owner: bytes, market: int, cloid: int) -> FoundOrder:
    """The open order of ``owner`` in ``market`` with client id ``cloid`` (protocol §10.3).

    Raises:
        OrderNotFound: no open order of ``owner`` has that client id in ``market``.
    """
    loc = get_cloid_locator(ws, owner, cloid)
    if loc is None:
        raise OrderNotFound(f"no open order with client id {cloid}")
    return find_order(ws, owner, market, loc.oid)
