"""Tests for tx.signing: digest, low-s signatures, recovery, addresses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tx.errors import HighSSignature, SignatureError, TxError
from tx.signing import (
    DOMAIN,
    HALF_N,
    SECP256K1_N,
    Signer,
    address_from_secret,
    checksum_address,
    parse_address,
    recover_signer,
    sign_digest,
    signing_digest,
    test_secret,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "signature_vectors.json"

KEY_ONE = (1).to_bytes(32, "big")
KEY_ONE_ADDRESS = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"

secrets_st = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
digests_st = st.binary(min_size=32, max_size=32)


def _split(sig: bytes) -> tuple[int, int, int]:
    """(r, s, v) of a 65-byte signature."""
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]


def _join(r: int, s: int, v: int) -> bytes:
    """65-byte signature from (r, s, v), r and s reduced to 32 bytes."""
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


# --- addresses -------------------------------------------------------------


def test_key_one_known_address():
    assert checksum_address(address_from_secret(KEY_ONE)) == KEY_ONE_ADDRESS
    assert Signer(KEY_ONE).address == parse_address(KEY_ONE_ADDRESS)


def test_eip55_reference_vectors():
    # From the EIP-55 specification.
    for text in [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ]:
        assert checksum_address(parse_address(text)) == text


@given(st.binary(min_size=20, max_size=20))
def test_eip55_round_trip(addr):
    text = checksum_address(addr)
    assert parse_address(text) == addr
    assert parse_address(text.lower()) == addr
    assert parse_address("0x" + text[2:].upper()) == addr


def test_bad_checksum_rejected():
    bad = KEY_ONE_ADDRESS[:3] + KEY_ONE_ADDRESS[3].lower() + KEY_ONE_ADDRESS[4:]  # 'E' -> 'e'
    assert bad != KEY_ONE_ADDRESS and bad.lower() != bad
    with pytest.raises(ValueError, match="checksum"):
        parse_address(bad)


@given(st.binary(min_size=20, max_size=20), st.integers(min_value=0, max_value=39))
def test_any_single_case_swap_breaks_checksum(addr, pos):
    text = checksum_address(addr)
    body = list(text[2:])
    if not body[pos].isalpha():
        return
    body[pos] = body[pos].swapcase()
    mutated = "".join(body)
    if mutated in (mutated.lower(), mutated.upper()):
        return  # became unchecksummed all-one-case text: accepted by design
    with pytest.raises(ValueError, match="checksum"):
        parse_address("0x" + mutated)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0x",
        "7E5F4552091A69125d5DfCb7b8C2659029395Bdf",  # no prefix
        "0X7e5f4552091a69125d5dfcb7b8c2659029395bdf",  # capital X prefix
        "0x7e5f4552091a69125d5dfcb7b8c2659029395bd",  # 39 digits
        "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf0",  # 41 digits
        "0x7e5f4552091a69125d5dfcb7b8c2659029395bdg",  # non-hex
        "0x7e5f4552091a69125d5dfcb7b8c2659029395_df",  # underscore
        "0x7e5f4552091a69125d5dfcb7b8c2659029395 df",  # space
        "0x7e5f4552091a69125d5dfcb7b8c2659029395bd\u0661",  # non-ASCII digit
    ],
)
def test_parse_address_rejects_malformed(text):
    with pytest.raises(ValueError):
        parse_address(text)


# --- digest ----------------------------------------------------------------


def test_digest_layout():
    from blake3 import blake3

    expected = blake3(DOMAIN + (7).to_bytes(8, "big") + (9).to_bytes(8, "big") + b"abc").digest()
    assert signing_digest(7, 9, b"abc") == expected
    assert len(expected) == 32


@pytest.mark.parametrize("chain_id,nonce", [(-1, 0), (0, -1), (2**64, 0), (0, 2**64), (True, 0)])
def test_digest_rejects_out_of_range(chain_id, nonce):
    with pytest.raises(ValueError):
        signing_digest(chain_id, nonce, b"")


def test_digest_accepts_u64_bounds():
    assert signing_digest(0, 0, b"") != signing_digest(2**64 - 1, 2**64 - 1, b"")


# --- sign / recover --------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(secrets_st, digests_st)
def test_sign_recover_round_trip(secret, digest):
    sig = sign_digest(secret, digest)
    assert len(sig) == 65
    r, s, v = _split(sig)
    assert 1 <= r < SECP256K1_N and 1 <= s <= HALF_N and v in (0, 1)
    assert recover_signer(digest, sig) == address_from_secret(secret)


@pytest.mark.parametrize("secret", [KEY_ONE, (SECP256K1_N - 1).to_bytes(32, "big"), (2).to_bytes(32, "big")])
def test_sign_recover_edge_keys(secret):
    digest = signing_digest(1, 0, b"edge")
    assert recover_signer(digest, sign_digest(secret, digest)) == address_from_secret(secret)


@pytest.mark.parametrize("secret", [bytes(32), SECP256K1_N.to_bytes(32, "big"), b"\x01" * 31])
def test_sign_rejects_invalid_secret(secret):
    with pytest.raises(ValueError):
        sign_digest(secret, bytes(32))
    with pytest.raises(ValueError):
        Signer(secret)


def test_signing_is_deterministic():
    digest = signing_digest(1, 5, b"x")
    assert sign_digest(KEY_ONE, digest) == sign_digest(KEY_ONE, digest)


def test_high_s_rejected():
    signer = Signer.from_name("alice")
    digest = signing_digest(1, 0, b"payload")
    r, s, v = _split(signer.sign(1, 0, b"payload"))
    malleated = _join(r, SECP256K1_N - s, v ^ 1)
    with pytest.raises(HighSSignature) as info:
        recover_signer(digest, malleated)
    assert info.value.code == "HIGH_S"
    assert isinstance(info.value, SignatureError)


def test_wrong_chain_id_recovers_other_address():
    signer = Signer.from_name("alice")
    sig = signer.sign(1, 3, b"action")
    assert recover_signer(signing_digest(1, 3, b"action"), sig) == signer.address
    try:
        other = recover_signer(signing_digest(2, 3, b"action"), sig)
    except SignatureError:
        return  # also acceptable: not the signer either way
    assert other != signer.address


def test_wrong_nonce_recovers_other_address():
    signer = Signer.from_name("bob")
    sig = signer.sign(1, 3, b"action")
    try:
        other = recover_signer(signing_digest(1, 4, b"action"), sig)
    except SignatureError:
        return
    assert other != signer.address


def test_every_bit_flip_is_rejected_or_other_address():
    signer = Signer.from_name("carol")
    digest = signing_digest(1, 0, b"flip")
    sig = signer.sign(1, 0, b"flip")
    for i in range(len(sig) * 8):
        flipped = bytearray(sig)
        flipped[i // 8] ^= 1 << (i % 8)
        try:
            addr = recover_signer(digest, bytes(flipped))
        except SignatureError:
            continue
        assert addr != signer.address, f"bit {i} flip still recovers the signer"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=65, max_size=65), digests_st)
def test_arbitrary_65_bytes_only_signature_errors(sig, digest):
    try:
        addr = recover_signer(digest, sig)
    except SignatureError:
        return
    assert len(addr) == 20


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=130))
def test_arbitrary_length_only_signature_errors(sig):
    try:
        recover_signer(bytes(32), sig)
    except SignatureError:
        pass


def _valid_sig() -> tuple[bytes, bytes]:
    digest = signing_digest(1, 0, b"v")
    return digest, Signer.from_name("dave").sign(1, 0, b"v")


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda r, s, v: _join(0, s, v), id="r=0"),
        pytest.param(lambda r, s, v: _join(r, 0, v), id="s=0"),
        pytest.param(lambda r, s, v: _join(SECP256K1_N, s, v), id="r=n"),
        pytest.param(lambda r, s, v: _join(2**256 - 1, s, v), id="r=max"),
        pytest.param(lambda r, s, v: _join(r, SECP256K1_N, v), id="s=n"),
        pytest.param(lambda r, s, v: _join(r, s, 2), id="v=2"),
        pytest.param(lambda r, s, v: _join(r, s, 3), id="v=3"),
        pytest.param(lambda r, s, v: _join(r, s, 27), id="v=27"),
        pytest.param(lambda r, s, v: _join(r, s, v)[:64], id="len64"),
        pytest.param(lambda r, s, v: _join(r, s, v) + b"\x00", id="len66"),
        pytest.param(lambda r, s, v: b"", id="empty"),
    ],
)
def test_malformed_signatures_rejected(mutate):
    digest, sig = _valid_sig()
    with pytest.raises(SignatureError):
        recover_signer(digest, mutate(*_split(sig)))


def test_s_exactly_half_n_is_low():
    # s == HALF_N is the largest low-s value: must not be HIGH_S (it may or
    # may not recover, but only a plain SignatureError is allowed).
    digest, sig = _valid_sig()
    r, _, v = _split(sig)
    try:
        recover_signer(digest, _join(r, HALF_N, v))
    except HighSSignature:
        pytest.fail("s == n//2 must count as low-s")
    except SignatureError:
        pass
    with pytest.raises(HighSSignature):
        recover_signer(digest, _join(r, HALF_N + 1, v))


def test_non_bytes_signature_is_signature_error():
    with pytest.raises(SignatureError):
        recover_signer(bytes(32), "00" * 65)  # type: ignore[arg-type]


def test_error_strings_carry_code():
    digest, sig = _valid_sig()
    with pytest.raises(TxError) as info:
        recover_signer(digest, sig[:10])
    assert str(info.value).startswith("BAD_SIGNATURE: ")


# --- test keys -------------------------------------------------------------


def test_test_secret_deterministic_and_distinct():
    from blake3 import blake3

    assert test_secret("alice") == test_secret("alice")
    assert test_secret("alice") != test_secret("bob")
    assert test_secret("alice") == blake3(b"clearinghouse/test-key/v1\x00alice").digest()
    assert 1 <= int.from_bytes(test_secret("\u00e9l\u00e8ve"), "big") < SECP256K1_N
    assert Signer.from_name("alice").address == address_from_secret(test_secret("alice"))


def test_signer_repr_hides_secret():
    signer = Signer(KEY_ONE)
    assert repr(signer) == f"Signer({KEY_ONE_ADDRESS})"


# --- fixtures --------------------------------------------------------------


def test_signature_vectors():
    vectors = json.loads(FIXTURES.read_text())["vectors"]
    assert len(vectors) >= 5
    for vec in vectors:
        secret = bytes.fromhex(vec["secret"])
        action = bytes.fromhex(vec["action_bytes"])
        digest = signing_digest(vec["chain_id"], vec["nonce"], action)
        assert digest.hex() == vec["digest"], vec["name"]
        assert checksum_address(address_from_secret(secret)) == vec["address"], vec["name"]
        sig = sign_digest(secret, digest)
        assert sig.hex() == vec["signature"], vec["name"]
        assert checksum_address(recover_signer(digest, bytes.fromhex(vec["signature"]))) == vec["address"]
        if "name_for_test_secret" in vec:
            assert test_secret(vec["name_for_test_secret"]) == secret
