"""Typed reads of the working state (protocol §7.1-§7.2).

``WorkingState.get`` returns whatever record type the key's namespace decodes
to, which a type checker cannot see. These helpers read one namespace each and
return its record type, so the rules read ``get_market_state(ws, m).mark_price``
with a checked type instead of an ``Any``. Records that may be absent return
``None``; records that always exist once genesis has run (the chain record, a
market's spec and state) raise ``MissingRecord`` instead, which only a broken
state or a bad market index can cause.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

from clearinghouse.spec.state.keys import (
    CHAIN_KEY,
    agent_key,
    cloid_key,
    market_spec_key,
    market_state_key,
    nonces_key,
    oracle_sub_key,
    order_loc_key,
    position_key,
    position_owner,
    position_prefix,
)
from clearinghouse.spec.state.records import (
    Agent,
    Chain,
    CloidLocator,
    MarketState,
    NonceSet,
    OracleSubmission,
    Order,
    OrderLocator,
    Position,
    Trigger,
)
from clearinghouse.spec.state.working_state import WorkingState
from tx.messages import MarketSpec

R = TypeVar("R")


class MissingRecord(LookupError):
    """A record that exists in every state after genesis is absent (protocol §7.1).

    Not a transaction rejection: the callers check a market index against
    ``Chain.market_count`` first, so this means the state itself is broken.
    """


def _read(ws: WorkingState, key: bytes, kind: type[R]) -> R | None:
    # No isinstance check per read (these reads are the hottest calls of a block): ``ws.get`` decodes
    # stored bytes as ``keys.record_type(key)``, and the handlers' own writes are checked by mypy;
    # tests/test_state_keys.py checks every reader against the key-to-type table.
    record: R | None = ws.get(key)
    return record


def _require(ws: WorkingState, key: bytes, kind: type[R]) -> R:
    record: R | None = ws.get(key)
    if record is None:
        raise MissingRecord(f"no record under key {key.hex()}")
    return record


def get_chain(ws: WorkingState) -> Chain:
    """The chain record: height, time, order-id counter, policy, oracle publishers (protocol §7.2).

    Raises:
        MissingRecord: before genesis.
    """
    return _require(ws, CHAIN_KEY, Chain)


def get_market_spec(ws: WorkingState, market: int) -> MarketSpec:
    """The genesis spec of ``market`` (protocol §5, §7.2).

    Raises:
        MissingRecord: ``market`` is not below ``Chain.market_count``.
    """
    return _require(ws, market_spec_key(market), MarketSpec)


def get_market_state(ws: WorkingState, market: int) -> MarketState:
    """The prices, EMAs, funding accumulators and open interest of ``market`` (protocol §7.2).

    Raises:
        MissingRecord: ``market`` is not below ``Chain.market_count``.
    """
    return _require(ws, market_state_key(market), MarketState)


def get_position(ws: WorkingState, market: int, owner: bytes) -> Position | None:
    """``owner``'s stored position in ``market``, or None (a flat default position is not stored, protocol §10.4)."""
    return _read(ws, position_key(market, owner), Position)


def get_order(ws: WorkingState, key: bytes) -> Order | None:
    """The resting order under the book key ``key``, or None (protocol §10.3)."""
    return _read(ws, key, Order)


def get_trigger(ws: WorkingState, key: bytes) -> Trigger | None:
    """The waiting trigger order under ``key``, or None (protocol §10.8)."""
    return _read(ws, key, Trigger)


def get_order_locator(ws: WorkingState, oid: int) -> OrderLocator | None:
    """Where the open order ``oid`` rests (its book or trigger key), or None (protocol §10.3)."""
    return _read(ws, order_loc_key(oid), OrderLocator)


def get_cloid_locator(ws: WorkingState, owner: bytes, cloid: int) -> CloidLocator | None:
    """The open order of ``owner`` with client id ``cloid``, or None (protocol §10.3)."""
    return _read(ws, cloid_key(owner, cloid), CloidLocator)


def get_agent(ws: WorkingState, agent: bytes) -> Agent | None:
    """The approval of the agent key ``agent`` (naming its owner), or None (protocol §4.5)."""
    return _read(ws, agent_key(agent), Agent)


def get_nonces(ws: WorkingState, signer: bytes) -> NonceSet | None:
    """The highest nonces ``signer`` has used, or None before its first transaction (protocol §4.6)."""
    return _read(ws, nonces_key(signer), NonceSet)


def get_oracle_submission(ws: WorkingState, market: int, publisher: bytes) -> OracleSubmission | None:
    """``publisher``'s latest price submission for ``market``, or None (protocol §11.2)."""
    return _read(ws, oracle_sub_key(market, publisher), OracleSubmission)


def market_positions(ws: WorkingState, market: int) -> Iterator[tuple[bytes, Position]]:
    """Every stored position of ``market`` as ``(owner, position)``, in owner address order (protocol §7.1).

    The keys are a snapshot taken when the walk starts (the caller may write positions while it
    walks); each record is read when its turn comes.
    """
    for key in ws.index.iter_prefix(position_prefix(market)):
        position: Position = ws.get(key)
        yield position_owner(key), position
