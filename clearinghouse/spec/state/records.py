"""State records: the typed values stored under the keys of ``keys.py``.

Each record is a frozen msgspec Struct encoded canonically (array-like
msgpack), so its bytes, and hence the state root, are unique. Records are
replaced, never mutated: ``msgspec.structs.replace`` gives the new version.

Money is micro-USDC, sizes are lots, prices are price units (protocol §2.1).
Accounting model (docs/protocol.md "Accounts"): every account holds *cash*, a
quote balance that fills move at the trade price (the buyer pays, the seller
receives), so trading is zero-sum in cash and conservation is exact.
A position's ``cost`` (signed entry notional) is kept only to report entry
price and realized PnL; account value = cash + sum(size x mark).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from tx.types import I64, U32, U64, Address, Hash32

_REC = dict(array_like=True, frozen=True, forbid_unknown_fields=True)


class Account(msgspec.Struct, **_REC):
    """A trader's cross-margin cash and the markets where it has a position (protocol §7.2).

    ``open_markets`` is sorted and lists markets with a non-zero position
    (cross or isolated), so account value is computed without scanning.
    ``open_orders`` counts resting and trigger orders (bounded per account).
    """

    cash: I64
    open_markets: list[U32]
    open_orders: U32


class NonceSet(msgspec.Struct, **_REC):
    """The signer's highest used nonces, ascending, at most ``MAX_NONCES`` (protocol §7.2)."""

    nonces: list[U64]


class Agent(msgspec.Struct, **_REC):
    """An approved agent key: it may trade for ``owner`` and nothing else (protocol §7.2)."""

    owner: Address


class Position(msgspec.Struct, **_REC):
    """An account's position and margin settings in one market (protocol §7.2).

    ``size`` is signed lots (positive long). ``cost`` is the signed entry
    notional of the open size (micro-USDC): entry price = cost / size.
    ``leverage`` and ``is_cross`` persist while flat (as on Hyperliquid).
    ``iso_cash`` is the isolated position's own quote balance (0 when cross):
    its value is iso_cash + size x mark. ``liq_cooldown_until_ms`` holds the
    30 s pause between partial liquidations. ``funding_entry`` is the
    market's ``funding_index`` when this position's funding was last settled
    (protocol §11.6): what it owes and has not paid is
    size x (funding_index - funding_entry) / 10^9, rounded up
    (``spec.math.funding.settlement_amount``); meaningless while flat.
    """

    size: I64
    cost: I64
    leverage: U32
    is_cross: bool
    iso_cash: I64
    liq_cooldown_until_ms: U64
    funding_entry: I64


class Order(msgspec.Struct, **_REC):
    """A resting limit order. ``size`` is what remains; ``orig_size`` what was placed (protocol §7.2)."""

    oid: U64
    owner: Address
    is_buy: bool
    price: U64
    size: U64
    orig_size: U64
    tif: Annotated[int, Meta(ge=0, le=3)]
    reduce_only: bool
    cloid: U64
    time_ms: U64


class Trigger(msgspec.Struct, **_REC):
    """An untriggered TP/SL order waiting for the mark price (protocol §7.2)."""

    oid: U64
    owner: Address
    is_buy: bool
    size: U64
    trigger_price: U64
    is_take_profit: bool
    limit_price: U64
    reduce_only: bool
    cloid: U64
    time_ms: U64


class OrderLocator(msgspec.Struct, **_REC):
    """Where an open order lives: the full book or trigger key (for cancel by id; protocol §7.2)."""

    key: bytes


class CloidLocator(msgspec.Struct, **_REC):
    """An open order's id, found by (owner, client order id; protocol §7.2)."""

    oid: U64


class MarketState(msgspec.Struct, **_REC):
    """A market's prices, EMAs and funding accumulators (protocol §11).

    Written by the end-of-block ``prices`` and ``funding`` steps
    (docs/prices-and-funding.md); ``last_trade_price`` and ``open_interest``
    by the matching engine. Every field is an integer:

    * prices are price units; ``external_price`` 0 means "none published";
      ``last_trade_price`` 0 means "no trade yet";
    * each EMA (``ema150_*``: 150 s EMA of book mid - oracle; ``ema30_*``:
      30 s EMA of median(bid, ask, last)) is kept as its value in 10^-6 units
      and its weight in ms (Hyperliquid's num/den as num/den and den);
      ``ema_time_ms`` is when they were last updated; weight 0 = no value;
    * funding: premium samples (parts per billion of the oracle price) summed
      over the current hour, their count, when the last sample was taken, the
      start of the current funding hour and the last hourly rate applied (ppb);
    * lazy funding (protocol §11.6): ``funding_index`` is the cumulative
      funding per lot in 10^-9 micro-USDC (each hourly settlement adds
      oracle x rate_ppb; positive = longs have paid shorts), ``funding_pool``
      the micro-USDC positions have paid in minus what they have drawn out,
      and ``funding_dust_e9`` the rounding residue not yet swept to the
      insurance fund, in 10^-9 micro-USDC, always in [0, 10^9). Exactly:
      funding_pool x 10^9 - funding_dust_e9 + sum over open positions of
      size x (funding_index - funding_entry) = 0.
    """

    oracle_price: U64
    external_price: U64
    mark_price: U64
    last_trade_price: U64
    ema150_e6: I64
    ema150_weight: I64
    ema30_e6: I64
    ema30_weight: I64
    ema_time_ms: U64
    premium_sum_ppb: I64
    premium_samples: U32
    last_sample_ms: U64
    last_funding_ms: U64
    funding_rate_ppb: I64
    open_interest: U64
    funding_index: I64
    funding_pool: I64
    funding_dust_e9: U64


class Chain(msgspec.Struct, **_REC):
    """Chain-wide values: genesis parameters, height and time, counters, totals.

    ``deposits`` and ``withdrawals`` are running totals so conservation
    (protocol §1.1) can be checked from state alone.
    """

    chain_id: U64
    genesis_hash: Hash32
    bridge: Address
    oracle_publishers: list[Address]
    policy: str
    market_count: U32
    height: U64
    time_ms: U64
    next_oid: U64
    deposits: U64
    withdrawals: U64
    oracle_fresh_ms: U64
    """Genesis freshness window of oracle submissions (protocol §11.2)."""


class OracleSubmission(msgspec.Struct, **_REC):
    """A publisher's latest prices for one market and the block time they were posted (protocol §11.2).

    Kept in state: the oracle is the median over the publishers whose latest
    submission is still fresh. ``external_price`` 0 = none offered.
    """

    oracle_price: U64
    external_price: U64
    time_ms: U64


class LiquidationRef(msgspec.Struct, **_REC):
    """A liquidated position's bankruptcy price at trigger, kept until its unit is back at >= 0 (protocol §7.2).

    The ``seed`` policy closes deficit-covering winners at this reference price.
    """

    market: U32
    was_long: bool
    reference_price: U64
    size: U64
    """Lots of the position at trigger: the deficit is attributed to the largest notional."""
