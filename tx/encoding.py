"""Canonical msgpack encoding and strict decoding.

msgspec's decoder is lenient: it accepts non-minimal integer encodings and
other representations of the same value (protocol §3.1). Signed and hashed bytes
must be unique, so ``decode_canonical`` accepts only bytes that re-encode to
themselves. Everything hashed or signed is produced by ``encode``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import blake3
import msgspec

from .actions import Action
from .errors import DecodeError, NonCanonicalEncoding
from .messages import MAX_TX_BYTES, Block, Genesis, Header, Transaction

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder()
_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


def encode(obj: Any) -> bytes:
    """The canonical msgpack bytes of a wire struct."""
    return _encoder.encode(obj)


def _decoder(type_: Any) -> msgspec.msgpack.Decoder[Any]:
    dec = _decoders.get(type_)
    if dec is None:
        dec = _decoders[type_] = msgspec.msgpack.Decoder(type_)
    return dec


def decode_canonical(data: bytes, type_: type[T], *, what: str | None = None) -> T:
    """Decode ``data`` as ``type_``, rejecting anything that is not the canonical encoding.

    Raises ``DecodeError`` for malformed or out-of-range input and
    ``NonCanonicalEncoding`` when the bytes decode but are not the unique
    encoding of the value.
    """
    label = what or getattr(type_, "__name__", "value")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"{label}: expected bytes, got {type(data).__name__}")
    try:
        value = _decoder(type_).decode(data)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"{label}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise DecodeError(f"{label}: {exc}") from None
    if _encoder.encode(value) != bytes(data):
        raise NonCanonicalEncoding(f"{label}: bytes are not the canonical encoding")
    return value


def decode_transaction(data: bytes) -> Transaction:
    """Decode one signed envelope, enforcing the size limit and canonical form."""
    if len(data) > MAX_TX_BYTES:
        raise DecodeError(f"transaction: {len(data)} bytes exceeds the limit of {MAX_TX_BYTES}")
    return decode_canonical(data, Transaction, what="transaction")


def decode_action(data: bytes) -> Action:
    """Decode one action (used by tools; the envelope decoder covers it in consensus)."""
    return decode_canonical(data, Action, what="action")  # type: ignore[arg-type]


def decode_block(data: bytes) -> Block:
    return decode_canonical(data, Block, what="block")


def decode_header(data: bytes) -> Header:
    return decode_canonical(data, Header, what="header")


def decode_genesis(data: bytes) -> Genesis:
    return decode_canonical(data, Genesis, what="genesis")


def tx_id(tx_bytes: bytes) -> bytes:
    """Transaction id: blake3 of the canonical envelope bytes (protocol §3.4)."""
    return blake3.blake3(tx_bytes).digest()


def header_hash(header: Header) -> bytes:
    """Block hash: blake3 of the canonical header bytes; the next block's parent."""
    return blake3.blake3(encode(header)).digest()


def genesis_hash(genesis: Genesis) -> bytes:
    """The parent hash of block 1."""
    return blake3.blake3(encode(genesis)).digest()
