"""Evidence events of the liquidation waterfall and ADL (protocol §6.7, §12.11).

Each carries what a reader needs to re-check the step by hand: the trigger
numbers, the prices and sizes, the deficit and the fund balance before and
after, the ranked queue (top entries with exact index fractions, its length
and a hash of the whole ranking) and each counterparty's quantity, price and
realized PnL. ``market`` is ``CROSS`` when a step concerns a whole cross
account rather than one isolated position.
"""

from __future__ import annotations

import msgspec

from clearinghouse.spec.events import _Event
from tx.types import I64, U32, U64, Address


class PositionSnapshot(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """One position of a unit at the mark, as carried by waterfall evidence (protocol §12.11)."""

    market: U32
    size: I64
    cost: I64
    mark: U64


class LiquidationTriggered(_Event, tag=40):
    """A margin unit fell below maintenance margin at the mark (step 1; protocol §12.11)."""

    account: Address
    market: U32
    value: I64
    maintenance_margin: U64
    positions: list[PositionSnapshot]
    method: str
    """``market`` (into the book) or ``backstop``; see the Backstop event for the latter."""


class MarketLiquidation(_Event, tag=41):
    """A reduce-only liquidation order sent into the book for one position (step 2; protocol §12.11)."""

    account: Address
    market: U32
    unit: U32
    side_is_buy: bool
    ordered: U64
    filled: U64
    limit_price: U64
    partial: bool
    cooldown_until_ms: U64


class InsuranceCover(_Event, tag=42):
    """The insurance fund pays (part of) a unit's deficit (step 3; protocol §12.11)."""

    account: Address
    unit: U32
    deficit: U64
    paid: U64
    fund_before: I64
    fund_after: I64


class Backstop(_Event, tag=43):
    """The insurance fund takes over a unit's positions and margin at mark (step 4; protocol §12.11)."""

    account: Address
    unit: U32
    reason: str
    value: I64
    maintenance_margin: U64
    positions: list[PositionSnapshot]
    margin_taken: I64
    fund_before: I64
    fund_after: I64


class QueueEntry(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """One ranked position: its index as an exact fraction num/den (decimal strings: they can exceed 64 bits).

    See protocol §12.11.
    """

    account: Address
    unit: U32
    size: I64
    index_num: str
    index_den: str


class AdlQueue(_Event, tag=44):
    """The ranked queue used to deleverage an underwater unit in one market (step 5; protocol §12.11)."""

    market: U32
    underwater: Address
    underwater_unit: U32
    underwater_size: I64
    bankruptcy_price: U64
    policy: str
    queue_length: U32
    ranking_hash: bytes
    top: list[QueueEntry]


class AdlStep(_Event, tag=45):
    """One counterparty closed by ADL: how much, at what price, what it realized (protocol §12.11)."""

    market: U32
    underwater: Address
    counterparty: Address
    counterparty_unit: U32
    rank: U32
    index_num: str
    index_den: str
    size: U64
    price: U64
    realized_pnl: I64
    remaining_after: I64
    neighbour_above: list[QueueEntry]
    neighbour_below: list[QueueEntry]


class DeficitCover(_Event, tag=46):
    """``seed`` policy: a winner's slice closed at the reference price covers a deficit (protocol §12.11)."""

    market: U32
    underwater: Address
    counterparty: Address
    rank: U32
    index_num: str
    index_den: str
    size: U64
    reference_price: U64
    realized_pnl: I64
    covered: U64
    deficit_remaining: U64


class AdlShortfall(_Event, tag=47):
    """ADL could not match the whole underwater size (``unmatched`` lots stay open), or, with
    ``unmatched = 0``, the insurance fund's deficit exceeded what the haircut pool was worth
    (protocol §12.7, §12.12)."""

    market: U32
    underwater: Address
    unmatched: I64


class WaterfallSkipped(_Event, tag=48):
    """An end-of-block step hit a hard bound (a 64-bit balance) and was undone for this block (protocol §12.11).

    ``step`` is ``liquidation`` or ``adl`` (for the unit ``account``/``unit``) or
    ``funding`` (``unit`` is the market, ``account`` all zero). The chain goes on.
    """

    account: Address
    unit: U32
    step: str
    code: str
    message: str


class Haircut(_Event, tag=49):
    """The insurance fund's deficit charged to a unit with an open position (step 50, protocol §12.7).

    ``amount = min(value_before, ceil(deficit x value_before / pool_value), what was still owed)``;
    units are charged in unit order; ``deficit_remaining`` is what the fund still owes after it.
    """

    account: Address
    unit: U32
    amount: U64
    value_before: I64
    deficit: U64
    pool_value: str
    """Σ value of the units charged, in decimal (a sum of 64-bit values can exceed 64 bits)."""
    deficit_remaining: U64


class Clawback(_Event, tag=50):
    """Policy ``clawback``: a profitable position's unit gives cash to an underwater unit (step 50,
    protocol §12.15). Positions stay open; only cash moves.

    ``amount`` is this unit's share of ``min(deficit, pool)`` in proportion to ``capacity``
    (``min(profit, value_before)``), by largest remainder; ``deficit_remaining`` what the
    underwater unit still lacks after it.
    """

    underwater: Address
    underwater_unit: U32
    account: Address
    unit: U32
    amount: U64
    capacity: U64
    value_before: I64
    deficit: U64
    pool: str
    """Σ capacity of the winners, in decimal (a sum of 64-bit values can exceed 64 bits)."""
    deficit_remaining: U64
