"""
Inclusion and non-inclusion proofs for the sparse Merkle tree.

Proof format (NORMATIVE)
------------------------

A :class:`Proof` for key ``k`` with ``kh = key_hash(k)`` describes the walk from
the root towards ``kh`` down to the *slot* where the walk ends, at depth
``depth``: the slot holds ``k``'s leaf, another leaf (whose key hash shares the
first ``depth`` bits of ``kh``), or nothing.

- ``depth``: number of levels walked, 0..255 (the sibling at level ``i`` is the
  child of the level-``i`` internal node that is *not* on the path).
- ``bitmap``: ``ceil(depth/8)`` bytes; bit ``i`` (MSB-first, as for key hashes) is
  1 iff the sibling at level ``i`` is not ``EMPTY``. Padding bits must be 0.
- ``siblings``: the non-``EMPTY`` sibling hashes (32 bytes each), root level first;
  their number equals the number of 1 bits in ``bitmap``.
- ``leaf_key_hash``, ``leaf_value_hash``: both empty, or (non-inclusion only) the
  ``kh`` and ``vh`` of the different leaf occupying the slot, 32 bytes each.

Wire form: canonical msgpack of the array ``[depth, bitmap, siblings,
leaf_key_hash, leaf_value_hash]`` (msgspec array_like struct; ints in smallest
form, bytes as bin). Decoders must reject bytes that do not re-encode
identically.

Verification
------------

``verify_proof(root, key, value, proof)``:

1. Check the structure above (lengths, popcount, zero padding, no ``EMPTY`` listed
   as a sibling); otherwise the proof is invalid.
2. Terminal hash ``t``:

   - ``value`` given (inclusion): leaf fields must be empty;
     ``t = leaf_hash(kh, value_hash(value))``.
   - ``value`` is ``None``, leaf fields empty (empty slot): ``t = EMPTY``.
   - ``value`` is ``None``, leaf fields set (another leaf in the slot): its key hash
     must differ from ``kh`` and share ``kh``'s first ``depth`` bits;
     ``t = leaf_hash(leaf_key_hash, leaf_value_hash)``.

3. For ``i`` from ``depth - 1`` down to 0, with ``s`` the level-``i`` sibling
   (``EMPTY`` where the bitmap bit is 0): ``t = internal_hash(t, s)`` if bit ``i``
   of ``kh`` is 0 else ``internal_hash(s, t)``.
4. The proof is valid iff ``t == root``.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from .errors import ProofDecodeError
from .smt import (
    EMPTY,
    MAX_LEAF_DEPTH,
    NodeGetter,
    internal_hash,
    key_bit,
    key_hash,
    leaf_hash,
    value_hash,
    walk_path,
)

Hash32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
"""A 32-byte hash."""

OptionalHash32 = Annotated[bytes, msgspec.Meta(max_length=32)]
"""A 32-byte hash, or empty bytes when absent."""


class Proof(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """Siblings along a key's path plus, for non-inclusion, the leaf occupying its slot."""

    depth: Annotated[int, msgspec.Meta(ge=0, le=MAX_LEAF_DEPTH)]
    """Depth of the slot where the walk towards the key ends (= number of levels)."""

    bitmap: Annotated[bytes, msgspec.Meta(max_length=32)]
    """``ceil(depth/8)`` bytes; bit i (MSB first) set iff the level-i sibling is not EMPTY."""

    siblings: tuple[Hash32, ...]
    """The non-EMPTY sibling hashes, root level first."""

    leaf_key_hash: OptionalHash32
    """Key hash of a *different* leaf occupying the slot (non-inclusion), else ``b""``."""

    leaf_value_hash: OptionalHash32
    """Value hash of that different leaf, else ``b""``."""

    def to_bytes(self) -> bytes:
        """Return the canonical msgpack encoding."""
        return _ENCODER.encode(self)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Proof:
        """
        Decode canonical proof bytes.

        Raises
        ------
        ProofDecodeError
            ``raw`` is not a well-formed proof or not its canonical encoding.
        """
        try:
            proof = _DECODER.decode(raw)
        except (msgspec.DecodeError, TypeError) as exc:
            raise ProofDecodeError(f"malformed proof bytes: {exc}") from exc
        if _ENCODER.encode(proof) != raw:
            raise ProofDecodeError("proof bytes are not in canonical form")
        if not is_well_formed(proof):
            raise ProofDecodeError("proof fields are inconsistent")
        return proof

    def to_json_obj(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (hashes as lowercase hex strings)."""
        return {
            "depth": self.depth,
            "bitmap": self.bitmap.hex(),
            "siblings": [s.hex() for s in self.siblings],
            "leaf_key_hash": self.leaf_key_hash.hex(),
            "leaf_value_hash": self.leaf_value_hash.hex(),
        }

    @classmethod
    def from_json_obj(cls, obj: Any) -> Proof:
        """
        Inverse of :meth:`to_json_obj`.

        Raises
        ------
        ProofDecodeError
            ``obj`` is not a well-formed proof dict.
        """
        try:
            if not isinstance(obj, dict) or sorted(obj) != sorted(_JSON_FIELDS):
                raise ValueError("expected exactly the proof fields")
            proof = Proof(
                depth=obj["depth"],
                bitmap=_from_hex(obj["bitmap"]),
                siblings=tuple(_from_hex(s) for s in obj["siblings"]),
                leaf_key_hash=_from_hex(obj["leaf_key_hash"]),
                leaf_value_hash=_from_hex(obj["leaf_value_hash"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProofDecodeError(f"malformed proof JSON: {exc}") from exc
        if not is_well_formed(proof):
            raise ProofDecodeError("proof fields are inconsistent")
        return proof


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Proof)
_JSON_FIELDS = ("depth", "bitmap", "siblings", "leaf_key_hash", "leaf_value_hash")


def _from_hex(text: Any) -> bytes:
    """Parse lowercase hex (the form :meth:`Proof.to_json_obj` emits)."""
    if not isinstance(text, str) or text != text.lower():
        raise ValueError("expected a lowercase hex string")
    return bytes.fromhex(text)


def build_proof(get_node: NodeGetter, root: bytes, key: bytes) -> Proof:
    """Return the proof for ``key`` (inclusion if present, else non-inclusion)."""
    kh = key_hash(key)
    siblings, record = walk_path(get_node, root, kh)
    depth = len(siblings)
    bitmap = bytearray((depth + 7) >> 3)
    present: list[bytes] = []
    for level, sibling in enumerate(siblings):
        if sibling != EMPTY:
            bitmap[level >> 3] |= 0x80 >> (level & 7)
            present.append(sibling)
    other_kh = other_vh = b""
    if record is not None and record[1:33] != kh:
        other_kh, other_vh = record[1:33], record[33:65]
    return Proof(depth, bytes(bitmap), tuple(present), other_kh, other_vh)


def is_well_formed(proof: object) -> bool:
    """Return True iff ``proof`` is a :class:`Proof` whose fields obey the format rules."""
    if not isinstance(proof, Proof):
        return False
    depth, bitmap, siblings = proof.depth, proof.bitmap, proof.siblings
    if type(depth) is not int or not 0 <= depth <= MAX_LEAF_DEPTH:
        return False
    if type(bitmap) is not bytes or len(bitmap) != (depth + 7) >> 3:
        return False
    if depth & 7 and bitmap[-1] & (0xFF >> (depth & 7)):
        return False  # padding bits set: same proof would have two encodings
    if type(siblings) is not tuple:
        return False
    if sum(bin(b).count("1") for b in bitmap) != len(siblings):
        return False
    for sibling in siblings:
        if type(sibling) is not bytes or len(sibling) != 32 or sibling == EMPTY:
            return False
    lkh, lvh = proof.leaf_key_hash, proof.leaf_value_hash
    if type(lkh) is not bytes or type(lvh) is not bytes:
        return False
    return (len(lkh), len(lvh)) in ((0, 0), (32, 32))


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """
    Check ``proof`` that ``key`` maps to ``value`` (or is absent, if ``value`` is None).

    Pure (no store access) and total: any malformed input yields False, never an
    exception.
    """
    try:
        return _verify(root, key, value, proof)
    except Exception:  # noqa: BLE001 - a verifier must answer, not crash, on hostile input
        return False


def _verify(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """Body of :func:`verify_proof`; may raise on exotic inputs, which the caller maps to False."""
    if type(root) is not bytes or len(root) != 32 or type(key) is not bytes:
        return False
    if value is not None and type(value) is not bytes:
        return False
    if not is_well_formed(proof):
        return False
    kh = key_hash(key)
    depth = proof.depth
    if value is not None:
        if proof.leaf_key_hash:
            return False
        node = leaf_hash(kh, value_hash(value))
    elif proof.leaf_key_hash:
        other = proof.leaf_key_hash
        if other == kh or not _same_prefix(other, kh, depth):
            return False
        node = leaf_hash(other, proof.leaf_value_hash)
    else:
        node = EMPTY
    next_sibling = len(proof.siblings) - 1
    for level in range(depth - 1, -1, -1):
        if (proof.bitmap[level >> 3] >> (7 - (level & 7))) & 1:
            sibling = proof.siblings[next_sibling]
            next_sibling -= 1
        else:
            sibling = EMPTY
        if key_bit(kh, level):
            node = internal_hash(sibling, node)
        else:
            node = internal_hash(node, sibling)
    return node == root


def _same_prefix(a: bytes, b: bytes, bits: int) -> bool:
    """Return True iff ``a`` and ``b`` agree on their first ``bits`` bits."""
    shift = 256 - bits
    return int.from_bytes(a, "big") >> shift == int.from_bytes(b, "big") >> shift


__all__ = ["Proof", "build_proof", "is_well_formed", "verify_proof"]
