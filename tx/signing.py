"""Transaction signing: digest, signature encoding, address derivation.

This module is normative: the rules below are consensus rules, and every
node must apply them bit for bit.

Signing digest
    ``digest = blake3(DOMAIN || u64be(chain_id) || u64be(nonce) || action_bytes)``
    (32 bytes, default blake3 output length), where
    ``DOMAIN = b"clearinghouse/tx/v1\\x00"`` (20 bytes, NUL-terminated so no
    other domain string can be a prefix of it), ``chain_id`` and ``nonce`` are
    unsigned 64-bit integers in big-endian, and ``action_bytes`` is the
    canonical encoding of the action (produced by ``tx.encoding``; opaque
    here).  The chain id is inside the digest so a signature for one chain
    never verifies on another; the nonce is inside so a signature cannot be
    replayed with a different nonce.

Signature encoding
    ECDSA over secp256k1 on the 32-byte digest *as is* (no further hashing),
    encoded as exactly 65 bytes ``r (32, BE) || s (32, BE) || v (1)``, with
    the recovery id ``v`` in ``{0, 1}`` (not 27/28, and 2/3, which would mean
    ``x = r + n``, are not accepted).

Validity
    A signature is valid only if it is 65 bytes, ``1 <= r < n``,
    ``1 <= s <= HALF_N`` (= ``n // 2``, the *low-s* rule), ``v`` in ``{0, 1}``,
    and public-key recovery succeeds.  The low-s rule removes ECDSA
    malleability: ``(r, s, v)`` and ``(r, n - s, v ^ 1)`` recover the same key,
    and accepting both would give one transaction two different byte strings
    (and ids).  Signers always produce low-s signatures (libsecp256k1 does so
    natively; :func:`sign_digest` normalises defensively anyway).

Address
    The signer of a transaction is the 20-byte Ethereum-style address of the
    recovered key: the last 20 bytes of ``keccak256(X || Y)``, where ``X || Y``
    is the 64-byte uncompressed public key without its ``0x04`` prefix.
    (Keccak-256 is the original Keccak padding, as in Ethereum, *not*
    NIST SHA3-256.)  Textual form is EIP-55 mixed-case hex with ``0x``.

Test keys
    :func:`test_secret` derives a private key from a human-readable name so
    scenarios and tests can say "alice" instead of pasting hex.  These keys
    are public knowledge and therefore INSECURE: never use them for value.
"""

from __future__ import annotations

import coincurve
from blake3 import blake3
from Crypto.Hash import keccak

from tx.errors import HighSSignature, SignatureError

__all__ = [
    "SECP256K1_N",
    "HALF_N",
    "DOMAIN",
    "TEST_KEY_DOMAIN",
    "SIGNATURE_LENGTH",
    "ADDRESS_LENGTH",
    "DIGEST_LENGTH",
    "signing_digest",
    "sign_digest",
    "recover_signer",
    "keccak256",
    "address_from_public_key",
    "address_from_secret",
    "checksum_address",
    "parse_address",
    "test_secret",
    "Signer",
]

#: Order of the secp256k1 group.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
#: Largest ``s`` accepted (low-s rule): ``s <= HALF_N``.
HALF_N = SECP256K1_N // 2

DOMAIN = b"clearinghouse/tx/v1\x00"
TEST_KEY_DOMAIN = b"clearinghouse/test-key/v1\x00"

SIGNATURE_LENGTH = 65
ADDRESS_LENGTH = 20
DIGEST_LENGTH = 32

_U64_MAX = 2**64 - 1
_HEX_CHARS = frozenset("0123456789abcdefABCDEF")


def _check_u64(name: str, value: int) -> None:
    """Reject anything that is not an int in the u64 range (bool excluded)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= _U64_MAX:
        raise ValueError(f"{name} must be in 0..2**64-1, got {value}")


def signing_digest(chain_id: int, nonce: int, action_bytes: bytes) -> bytes:
    """Return the 32-byte digest a transaction signature covers.

    ``blake3(DOMAIN || u64be(chain_id) || u64be(nonce) || action_bytes)``.
    Raises ValueError if chain_id or nonce is outside u64 (callers are
    expected to have validated them while decoding).
    """
    _check_u64("chain_id", chain_id)
    _check_u64("nonce", nonce)
    if not isinstance(action_bytes, (bytes, bytearray, memoryview)):
        raise ValueError("action_bytes must be bytes")
    h = blake3(DOMAIN)
    h.update(chain_id.to_bytes(8, "big"))
    h.update(nonce.to_bytes(8, "big"))
    h.update(bytes(action_bytes))
    return h.digest()


def _check_secret(secret: bytes) -> None:
    """Reject secrets that are not 32 bytes encoding an integer in [1, n-1]."""
    if not isinstance(secret, (bytes, bytearray)) or len(secret) != 32:
        raise ValueError("secret must be 32 bytes")
    k = int.from_bytes(secret, "big")
    if not 1 <= k < SECP256K1_N:
        raise ValueError("secret must encode an integer in [1, n-1]")


def _check_digest(digest: bytes) -> None:
    """Digests are produced locally, so a wrong one is a caller bug: ValueError."""
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != DIGEST_LENGTH:
        raise ValueError("digest must be 32 bytes")


def sign_digest(secret: bytes, digest: bytes) -> bytes:
    """Sign a 32-byte digest; return the 65-byte low-s ``r || s || v``.

    Deterministic (RFC 6979 nonces in libsecp256k1), so the same secret and
    digest always give the same signature; fixtures rely on that.
    """
    _check_secret(secret)
    _check_digest(digest)
    sig = coincurve.PrivateKey(bytes(secret)).sign_recoverable(bytes(digest), hasher=None)
    r = int.from_bytes(sig[0:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    v = sig[64]
    if s > HALF_N:
        # libsecp256k1 already emits low-s; this keeps us correct if a
        # backend ever does not. Negating s mirrors R, so flip the parity.
        s = SECP256K1_N - s
        v ^= 1
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def recover_signer(digest: bytes, sig: bytes) -> bytes:
    """Return the 20-byte address that produced ``sig`` over ``digest``.

    Enforces every validity rule in the module docstring.  For any value of
    ``sig`` it raises only SignatureError (HighSSignature for s > n/2);
    ``digest`` is trusted (ValueError if not 32 bytes).  Note that recovery
    always yields *some* address for a valid-looking signature: whether it
    is the expected signer is the caller's check.
    """
    _check_digest(digest)
    if not isinstance(sig, (bytes, bytearray, memoryview)):
        raise SignatureError(f"signature must be bytes, got {type(sig).__name__}")
    sig = bytes(sig)
    if len(sig) != SIGNATURE_LENGTH:
        raise SignatureError(f"signature must be {SIGNATURE_LENGTH} bytes, got {len(sig)}")
    r = int.from_bytes(sig[0:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    v = sig[64]
    if not 1 <= r < SECP256K1_N:
        raise SignatureError("signature r out of range [1, n-1]")
    if not 1 <= s < SECP256K1_N:
        raise SignatureError("signature s out of range [1, n-1]")
    if s > HALF_N:
        raise HighSSignature("signature s is in the upper half of the group order")
    if v not in (0, 1):
        raise SignatureError(f"signature recovery id must be 0 or 1, got {v}")
    try:
        pub = coincurve.PublicKey.from_signature_and_message(sig, bytes(digest), hasher=None)
    except Exception as exc:  # noqa: BLE001 - any backend failure is a bad signature
        raise SignatureError(f"public key recovery failed: {exc}") from None
    return address_from_public_key(pub)


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's, original padding), 32 bytes."""
    return keccak.new(digest_bits=256, data=bytes(data)).digest()


def address_from_public_key(pub: coincurve.PublicKey) -> bytes:
    """Ethereum address: last 20 bytes of keccak256(64-byte uncompressed key)."""
    return keccak256(pub.format(compressed=False)[1:])[-ADDRESS_LENGTH:]


def address_from_secret(secret: bytes) -> bytes:
    """Address of the key pair with private key ``secret``."""
    _check_secret(secret)
    return address_from_public_key(coincurve.PrivateKey(bytes(secret)).public_key)


def checksum_address(addr: bytes) -> str:
    """EIP-55 text form: ``0x`` + hex where letters are upper-cased per keccak.

    Letter ``i`` is upper case iff nibble ``i`` of keccak256(lowercase hex)
    is >= 8; this lets a typo in a hand-copied address be caught.
    """
    if not isinstance(addr, (bytes, bytearray)) or len(addr) != ADDRESS_LENGTH:
        raise ValueError("address must be 20 bytes")
    lower = bytes(addr).hex()
    h = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(h[i], 16) >= 8 else c for i, c in enumerate(lower))


def parse_address(text: str) -> bytes:
    """Parse ``0x`` + 40 hex chars into 20 bytes.

    All-lower or all-upper hex carries no checksum and is accepted as is;
    mixed case is taken as EIP-55 and must match exactly, so a mistyped
    address is rejected rather than silently becoming another account.
    """
    if not isinstance(text, str):
        raise ValueError(f"address must be a string, got {type(text).__name__}")
    if not text.startswith("0x"):
        raise ValueError(f"address must start with '0x': {text!r}")
    body = text[2:]
    # Explicit character check: int()/fromhex() would accept '_' or spaces.
    if len(body) != 40 or not all(c in _HEX_CHARS for c in body):
        raise ValueError(f"address must be '0x' followed by 40 hex digits: {text!r}")
    addr = bytes.fromhex(body)
    if body != body.lower() and body != body.upper():
        expected = checksum_address(addr)
        if text != expected:
            raise ValueError(f"address has an invalid EIP-55 checksum: {text!r} (expected {expected})")
    return addr


def test_secret(name: str) -> bytes:
    """Deterministic INSECURE private key for a human name (tests/scenarios only).

    ``blake3(TEST_KEY_DOMAIN || utf8(name))``, re-hashed (blake3 of the
    previous 32 bytes) until it encodes an integer in [1, n-1] — which in
    practice never takes a second round, but keeps the function total.
    Anyone can compute these keys: never use them to hold value.
    """
    if not isinstance(name, str):
        raise ValueError("name must be a string")
    k = blake3(TEST_KEY_DOMAIN + name.encode("utf-8")).digest()
    while not 1 <= int.from_bytes(k, "big") < SECP256K1_N:
        k = blake3(k).digest()
    return k


# The name starts with "test"; stop pytest collecting it when a test module
# imports it (it would otherwise be run as a test and fail on its argument).
test_secret.__test__ = False  # type: ignore[attr-defined]


class Signer:
    """A private key with its address, signing transaction digests."""

    __slots__ = ("_secret", "address")

    def __init__(self, secret: bytes) -> None:
        _check_secret(secret)
        self._secret = bytes(secret)
        self.address: bytes = address_from_secret(self._secret)

    @classmethod
    def from_name(cls, name: str) -> Signer:
        """Signer for the insecure deterministic test key of ``name``."""
        return cls(test_secret(name))

    def sign(self, chain_id: int, nonce: int, action_bytes: bytes) -> bytes:
        """Return the 65-byte signature over ``signing_digest(chain_id, nonce, action_bytes)``."""
        return sign_digest(self._secret, signing_digest(chain_id, nonce, action_bytes))

    def __repr__(self) -> str:
        # Never print the secret.
        return f"Signer({checksum_address(self.address)})"
