"""The signed envelope, blocks, headers and genesis: everything else on the wire.

A block carries its transactions as raw bytes, not decoded structs, so that a
malformed or non-canonical transaction is rejected on its own (with a receipt)
instead of making the whole block undecodable; the header's ``tx_root``
commits to exactly those bytes.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from .actions import Action
from .types import U64, Address, Hash32, Name, PosU64, Signature65

MAX_TX_BYTES = 16 * 1024
"""Largest accepted encoded transaction."""
MAX_BLOCK_TXS = 4_000
"""Most transactions in one block: 4,000 x 16 KiB (plus framing and witness) fits one 64 MiB log frame."""
MAX_MARKETS = 256
MAX_ORACLE_PUBLISHERS = 16

MIN_MARK_BAND_BPS = 1
MAX_MARK_BAND_BPS = 900
"""Bounds of ``MarketSpec.mark_band_bps`` (protocol §5, §11.3). The upper bound keeps a mark pushed to
the band's edge harmless to the insurance fund: a withdrawal leaves at least 10% of the notional in the
account, and a move of b/(1-b) <= 10% (b <= 1/11) back to the oracle cannot take more than that."""
DEFAULT_MARK_BAND_BPS = 500
"""The mark, the book's inputs to it and their EMA stay within 5% of the oracle unless genesis says otherwise."""
MIN_ORACLE_FRESH_MS = 1_000
MAX_ORACLE_FRESH_MS = 3_600_000
"""Bounds of ``Genesis.oracle_fresh_ms`` (protocol §5, §11.2): 1 s .. 1 h."""
DEFAULT_ORACLE_FRESH_MS = 60_000
"""A publisher's latest submission counts for 60 s of block time (20 of Hyperliquid's 3 s rounds)."""

_STRICT = dict(array_like=True, frozen=True, forbid_unknown_fields=True)


class Transaction(msgspec.Struct, **_STRICT):
    """The signed envelope: an action, the signer's nonce, a 65-byte r||s||v signature."""

    action: Action
    nonce: U64
    signature: Signature65


class Header(msgspec.Struct, **_STRICT):
    """Block header. ``state_root`` and ``events_root`` are the roots *after* the block."""

    height: U64
    time_ms: U64
    parent_hash: Hash32
    tx_root: Hash32
    state_root: Hash32
    events_root: Hash32


class Block(msgspec.Struct, **_STRICT):
    """A header and its transactions (raw canonical envelope bytes, producer order)."""

    header: Header
    txs: Annotated[list[Annotated[bytes, Meta(max_length=MAX_TX_BYTES)]], Meta(max_length=MAX_BLOCK_TXS)]


class MarketSpec(msgspec.Struct, **_STRICT):
    """A perpetual market defined in genesis (protocol §3.4, §5).

    Fee rates are in parts per million of notional (4.5 bps = 450).
    ``impact_notional`` and ``min_notional`` are micro-USDC. ``mark_band_bps``
    is the half-width of the band around the oracle price that the mark, the
    book's inputs to it and their EMA stay in (protocol §11.3); it is always
    encoded (the default only spares Python callers from spelling it out).
    """

    name: Name
    sz_decimals: Annotated[int, Meta(ge=0, le=6)]
    max_leverage: Annotated[int, Meta(ge=1, le=100)]
    taker_fee_ppm: Annotated[int, Meta(ge=0, le=10_000)]
    maker_fee_ppm: Annotated[int, Meta(ge=0, le=10_000)]
    impact_notional: PosU64
    min_notional: U64
    initial_price: PosU64
    mark_band_bps: Annotated[int, Meta(ge=MIN_MARK_BAND_BPS, le=MAX_MARK_BAND_BPS)] = DEFAULT_MARK_BAND_BPS


class Genesis(msgspec.Struct, **_STRICT):
    """The chain's fixed starting point: authorities, markets, policy, insurance fund.

    ``policy`` names the liquidation/ADL policy (``hyperliquid``, ``bitmex``,
    ``seed``). Oracle publishers must be sorted ascending and distinct.
    ``oracle_fresh_ms`` is how long (block time) a publisher's latest
    submission counts toward the oracle (protocol §11.2); like every field it
    is always encoded.
    """

    chain_id: U64
    time_ms: U64
    bridge: Address
    oracle_publishers: Annotated[list[Address], Meta(min_length=1, max_length=MAX_ORACLE_PUBLISHERS)]
    insurance_fund: Annotated[int, Meta(ge=0, le=2**63 - 1)]
    policy: Name
    markets: Annotated[list[MarketSpec], Meta(max_length=MAX_MARKETS)]
    oracle_fresh_ms: Annotated[int, Meta(ge=MIN_ORACLE_FRESH_MS, le=MAX_ORACLE_FRESH_MS)] = DEFAULT_ORACLE_FRESH_MS


class ChangedKey(msgspec.Struct, **_STRICT):
    """A state key the block changed and blake3 of its new value (empty = deleted)."""

    key: bytes
    value_hash: bytes


class BlockWitness(msgspec.Struct, **_STRICT):
    """The producer's account of a block, carried beside it in the log (not consensus).

    The header roots are what is verified; the witness lets a verifier that
    disagrees say *where*: which state keys differ and which transaction's
    events first differ. Its event hashes are the events-root leaves.
    """

    changed: list[ChangedKey]
    event_leaves: list[bytes]
    event_tx_indexes: list[int]


class LogBlock(msgspec.Struct, **_STRICT):
    """A block frame's payload in the log file: the block and its witness."""

    block: Block
    witness: BlockWitness
