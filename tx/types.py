"""Bounded integer and byte types used on the wire.

Every integer that crosses the wire is bounded here, so msgspec rejects an
out-of-range value while decoding (the consensus code never sees it), and every
value fits in a signed or unsigned 64-bit slot as protocol §2.3 requires.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

U64_MAX = 2**64 - 1
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1

U8 = Annotated[int, Meta(ge=0, le=255)]
U16 = Annotated[int, Meta(ge=0, le=2**16 - 1)]
U32 = Annotated[int, Meta(ge=0, le=2**32 - 1)]
U64 = Annotated[int, Meta(ge=0)]
"""Unsigned 64-bit: msgpack cannot carry more, and msgspec bounds must fit i64."""
PosU64 = Annotated[int, Meta(ge=1, le=I64_MAX)]
"""A strictly positive amount that also fits in i64 (sizes, prices, amounts)."""
I64 = Annotated[int, Meta(ge=I64_MIN, le=I64_MAX)]

Address = Annotated[bytes, Meta(min_length=20, max_length=20)]
"""A 20-byte Ethereum-style account address."""
Hash32 = Annotated[bytes, Meta(min_length=32, max_length=32)]
Signature65 = Annotated[bytes, Meta(min_length=65, max_length=65)]
Name = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]
"""Market and policy names: short, ASCII, no spaces."""
