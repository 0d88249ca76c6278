"""Events: what the transition says it did, committed through the events root.

Each event is a tagged, array-like msgspec Struct with a canonical encoding;
the block's events root is ``tx.merkle.ordered_root`` over their encodings in
emission order. Every transaction gets exactly one ``Receipt`` (accepted or
rejected with a typed code), followed by the events it caused; end-of-block
work (prices, triggers, funding, liquidation, ADL) follows all receipts.
"""

from __future__ import annotations

from typing import Union

import msgspec

from tx.types import I64, U32, U64, Address

_EV = dict(array_like=True, frozen=True, forbid_unknown_fields=True, tag_field="t")


class _Event(msgspec.Struct, **_EV):
    pass


BaseEvent = _Event
"""The base of every event, transaction or waterfall (protocol §6.7): a tagged, array-like struct."""


class Receipt(_Event, tag=1):
    """The outcome of one transaction. ``tx_index`` is its position in the block (protocol §6.7)."""

    tx_index: U32
    tx_id: bytes
    signer: bytes
    account: bytes
    action: str
    ok: bool
    code: str
    message: str


class Deposited(_Event, tag=2):
    """The bridge credited ``amount`` micro-USDC to ``account``; ``ref`` is its reference (protocol §6.7, §9.1)."""

    tx_index: U32
    account: Address
    amount: U64
    ref: U64


class Withdrew(_Event, tag=3):
    """``amount`` micro-USDC left ``account`` for ``destination`` off-chain (protocol §6.7, §9.2)."""

    tx_index: U32
    account: Address
    amount: U64
    destination: Address


class Transferred(_Event, tag=4):
    """``amount`` micro-USDC moved from one account's cross cash to another's (protocol §6.7, §9.3)."""

    tx_index: U32
    source: Address
    destination: Address
    amount: U64


class AgentSet(_Event, tag=5):
    """An agent key was approved for, or revoked from, ``owner`` (protocol §6.7, §9.7)."""

    tx_index: U32
    owner: Address
    agent: Address
    approved: bool


class OrderStatus(_Event, tag=10):
    """An order's lifecycle step: resting, filled, cancelled (with why), triggered, rejected (protocol §6.7)."""

    tx_index: U32
    market: U32
    oid: U64
    owner: Address
    status: str
    reason: str
    remaining: U64


class Fill(_Event, tag=11):
    """One match of an order against the book (protocol §10.3). Prices in price units, size in
    lots, fees and PnL in micro-USDC. ``liquidation``: the taker is a market liquidation order
    sent by the waterfall (protocol §12.3), not a trader's own order. The waterfall's backstop,
    ADL and deficit-cover moves are not fills: see ``PositionTransfer``."""

    tx_index: U32
    market: U32
    price: U64
    size: U64
    taker: Address
    maker: Address
    taker_oid: U64
    maker_oid: U64
    taker_is_buy: bool
    taker_fee: U64
    maker_fee: U64
    taker_realized_pnl: I64
    maker_realized_pnl: I64
    liquidation: bool


class PositionChanged(_Event, tag=12):
    """A position's settings changed without a fill: leverage or margin mode (protocol §6.7, §9.5)."""

    tx_index: U32
    market: U32
    account: Address
    size: I64
    cost: I64
    leverage: U32
    is_cross: bool
    iso_cash: I64


class MarginMoved(_Event, tag=13):
    """``delta`` micro-USDC moved into (positive) or out of an isolated position's bucket (protocol §6.7, §9.6)."""

    tx_index: U32
    market: U32
    account: Address
    delta: I64


class PositionTransfer(_Event, tag=14):
    """An administered move of ``size`` lots between two accounts at a set ``price`` (protocol §10.9).

    Not a trade: no order, no order id, no fee, no last-trade price. ``closing`` is the account
    whose position the waterfall step acts on (the liquidated or underwater unit's owner for
    ``backstop`` and ``adl``, the winner for ``deficit_cover``); ``counterparty`` takes the other
    side. ``closing_is_buy`` is the closing account's direction: its position only shrinks (never
    opens or flips); the counterparty's may grow or flip (the fund taking a position over).
    Realized PnL per side as in a fill. Always end-of-block work, so it carries no ``tx_index``.
    """

    market: U32
    reason: str
    closing: Address
    counterparty: Address
    closing_is_buy: bool
    size: U64
    price: U64
    closing_realized_pnl: I64
    counterparty_realized_pnl: I64


class PricesSet(_Event, tag=20):
    """A market's new oracle and mark prices and the mark's inputs (protocol §11.3).

    Emitted at end of block when the oracle or the mark changed. ``publishers``
    counts the publishers whose latest submission for the market is fresh (the
    oracle is held when that is not more than half of them, protocol §11.2).
    ``source_a`` is oracle + EMA150(mid - oracle), ``source_b`` median(bid,
    ask, last) and ``ema30_b`` its 30 s EMA, each after the band around the
    oracle; 0 means absent (as does ``external_price`` 0).
    """

    market: U32
    oracle_price: U64
    external_price: U64
    mark_price: U64
    publishers: U32
    source_a: U64
    source_b: U64
    ema30_b: U64


class FundingPaid(_Event, tag=21):
    """One position's lazy funding settlement (protocol §11.6), emitted when a position whose
    entry snapshot lags the market's index changes size (``amount`` positive = paid,
    negative = received; 0 when the exact amount rounded to zero).

    Paid amounts were rounded up, received amounts down; ``is_cross`` says
    whether it moved the account's cash or the isolated position's margin;
    ``size`` is the size that accrued it. ``swept`` is the whole micro-USDC of
    rounding dust this settlement moved from the market's pool to the insurance fund.
    """

    market: U32
    account: Address
    size: I64
    is_cross: bool
    amount: I64
    swept: U64


class FundingSettled(_Event, tag=22):
    """One market's hourly funding: the rate, its inputs, and the index step (protocol §11.5-§11.6).

    ``hours`` is how many hour boundaries the block crossed (settled once:
    see docs/prices-and-funding.md); rates and premiums are parts per billion.
    No cash moves here: ``index_step`` = oracle x rate (10^-9 micro-USDC per
    lot) is added to the market's cumulative index, giving ``funding_index``;
    each position pays its share when next touched (``FundingPaid``).
    ``open_interest`` lots were long (and as many short) when the step was taken.
    """

    market: U32
    hours: U32
    samples: U32
    avg_premium_ppb: I64
    rate_ppb: I64
    oracle_price: U64
    index_step: I64
    funding_index: I64
    open_interest: U64


Event = Union[
    Receipt,
    Deposited,
    Withdrew,
    Transferred,
    AgentSet,
    OrderStatus,
    Fill,
    PositionChanged,
    MarginMoved,
    PositionTransfer,
    PricesSet,
    FundingPaid,
    FundingSettled,
]
