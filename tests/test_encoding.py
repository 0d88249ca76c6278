"""Canonical transaction encoding (protocol §3): round trips, rejections, vectors.

Every action type round-trips through the canonical encoder and the strict
decoder; every other byte string for a transaction is rejected with
``DecodeError`` or ``NonCanonicalEncoding`` and, fed into a block, becomes a
rejected receipt (``DECODE`` / ``NON_CANONICAL``) that changes nothing.
``fixtures/encoding_vectors.json`` pins one canonical example per action type;
regenerate it with ``python tests/test_encoding.py --write-vectors`` after an
intended wire change.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import coincurve
import msgspec
import msgspec.inspect as mi
import pytest
from conftest import assert_rejected_without_effect, cash_of, codes_of
from hypothesis import given
from hypothesis import strategies as st

from clearinghouse.tools.demo import DEMO_CHAIN_ID, DEMO_GENESIS_TIME_MS, USDC, demo_genesis
from tx import actions as A
from tx.builder import Wallet, sign_transaction
from tx.encoding import decode_action, decode_canonical, decode_genesis, decode_transaction, encode, genesis_hash, tx_id
from tx.errors import DecodeError, HighSSignature, NonCanonicalEncoding
from tx.messages import MAX_TX_BYTES, Genesis, Transaction
from tx.signing import SECP256K1_N, Signer, address_from_public_key, checksum_address, recover_signer, signing_digest

VECTORS_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "encoding_vectors.json"


# ---------------------------------------------------------------- generic strategies
def _strategy(t: mi.Type) -> st.SearchStrategy[Any]:
    """A hypothesis strategy for any value of a wire type, bounds taken from its msgspec metadata."""
    if isinstance(t, mi.IntType):
        lo = t.ge if t.ge is not None else -(2**63)
        hi = t.le if t.le is not None else 2**64 - 1  # msgpack cannot carry more
        edges = [v for v in (lo, lo + 1, hi - 1, hi, 0, 1) if lo <= v <= hi]
        return st.one_of(st.sampled_from(edges), st.integers(lo, hi))
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.BytesType):
        return st.binary(min_size=t.min_length or 0, max_size=t.max_length if t.max_length is not None else 64)
    if isinstance(t, mi.StrType):
        return st.text(min_size=t.min_length or 0, max_size=t.max_length or 32)
    if isinstance(t, mi.ListType):
        return st.lists(_strategy(t.item_type), min_size=t.min_length or 0, max_size=min(t.max_length or 8, 8))
    if isinstance(t, mi.StructType):
        return st.builds(t.cls, **{f.name: _strategy(f.type) for f in t.fields})
    if isinstance(t, mi.UnionType):
        return st.one_of([_strategy(u) for u in t.types])
    raise NotImplementedError(f"no strategy for {t!r}")


def action_strategy(cls: type | None = None) -> st.SearchStrategy[Any]:
    return _strategy(mi.type_info(cls if cls is not None else A.Action))


ALICE = Signer.from_name("alice")
BOB = Signer.from_name("bob")
NONCE = DEMO_GENESIS_TIME_MS + 1000


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("cls", A.ACTION_TYPES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_every_action_type_round_trips(cls: type, data: st.DataObject) -> None:
    action = data.draw(action_strategy(cls))
    raw = encode(action)
    assert decode_action(raw) == action
    assert encode(decode_action(raw)) == raw
    tx = Transaction(
        action=action,
        nonce=data.draw(st.integers(0, 2**64 - 1)),
        signature=data.draw(st.binary(min_size=65, max_size=65)),
    )
    tx_bytes = encode(tx)
    assert decode_transaction(tx_bytes) == tx


@given(action=action_strategy())
def test_signed_transaction_round_trips_and_binds_the_action(action: Any) -> None:
    raw = sign_transaction(ALICE, DEMO_CHAIN_ID, action, NONCE)
    tx = decode_transaction(raw)
    assert tx.action == action and tx.nonce == NONCE
    assert encode(tx) == raw
    assert ALICE.sign(DEMO_CHAIN_ID, NONCE, encode(action)) == tx.signature


def test_action_tags_are_unique_and_stable() -> None:
    tags = {cls.__name__: cls.__struct_config__.tag for cls in A.ACTION_TYPES}
    assert len(set(tags.values())) == len(tags)
    # The wire format: an existing action never changes its tag.
    assert {k: v for k, v in tags.items() if k in EXPECTED_TAGS} == EXPECTED_TAGS


EXPECTED_TAGS = {
    "Deposit": 1,
    "Withdraw": 2,
    "Transfer": 3,
    "PlaceOrder": 10,
    "MarketOrder": 11,
    "TriggerOrder": 12,
    "Cancel": 13,
    "CancelByCloid": 14,
    "Modify": 15,
    "UpdateLeverage": 16,
    "UpdateIsolatedMargin": 17,
    "ApproveAgent": 18,
    "OracleUpdate": 19,
}


# ---------------------------------------------------------------- hand-built msgpack
class Raw(bytes):
    """Bytes spliced into a hand-built encoding as they are (to write non-canonical forms)."""


def mp(value: Any) -> bytes:
    """msgpack of nested lists and scalars; ``Raw`` pieces are copied verbatim."""
    if isinstance(value, Raw):
        return bytes(value)
    if isinstance(value, list):
        n = len(value)
        head = bytes([0x90 | n]) if n < 16 else b"\xdc" + n.to_bytes(2, "big")
        return head + b"".join(mp(v) for v in value)
    return msgspec.msgpack.encode(value)


TO = BOB.address
SIG = bytes(range(1, 66))


def deposit(*, tag: Any = 1, to: Any = TO, amount: Any = 5, ref: Any = 1, extra: list[Any] | None = None) -> list[Any]:
    return [tag, to, amount, ref, *(extra or [])]


def envelope(action: Any = None, *, nonce: Any = NONCE, sig: Any = SIG, extra: list[Any] | None = None) -> bytes:
    return mp([action if action is not None else deposit(), nonce, sig, *(extra or [])])


def order(**over: Any) -> list[Any]:
    fields = dict(tag=10, market=0, is_buy=True, price=90_000_000, size=10, tif=0, reduce_only=False, cloid=0)
    fields.update(over)
    return list(fields.values())


def test_hand_built_encoding_matches_the_encoder() -> None:
    """The builder below writes exactly the canonical bytes when nothing is overridden."""
    assert envelope() == encode(Transaction(action=A.Deposit(to=TO, amount=5, ref=1), nonce=NONCE, signature=SIG))
    assert mp([order(), 7, SIG]) == encode(
        Transaction(
            action=A.PlaceOrder(market=0, is_buy=True, price=90_000_000, size=10, tif=0, reduce_only=False, cloid=0),
            nonce=7,
            signature=SIG,
        )
    )


_GOOD = envelope()

NON_CANONICAL = {
    "uint8 form of a fixint amount (0xcc 0x05)": envelope(deposit(amount=Raw(b"\xcc\x05"))),
    "uint16 form of a fixint amount": envelope(deposit(amount=Raw(b"\xcd\x00\x05"))),
    "uint32 form of a fixint ref": envelope(deposit(ref=Raw(b"\xce\x00\x00\x00\x01"))),
    "int8 form of a positive tag": envelope(deposit(tag=Raw(b"\xd0\x01"))),
    "int64 form of the nonce": envelope(nonce=Raw(b"\xd3" + NONCE.to_bytes(8, "big"))),
    "array16 header for the action": envelope(Raw(b"\xdc\x00\x04" + b"".join(mp(v) for v in deposit()))),
    "array32 header for the envelope": Raw(b"\xdd\x00\x00\x00\x03" + mp(deposit()) + mp(NONCE) + mp(SIG)),
    "bin16 header for the address": envelope(deposit(to=Raw(b"\xc5\x00\x14" + TO))),
    "bin32 header for the signature": envelope(sig=Raw(b"\xc6\x00\x00\x00\x41" + SIG)),
    "uint64 form of a small order size": mp([order(size=Raw(b"\xcf" + (10).to_bytes(8, "big"))), NONCE, SIG]),
}

DECODE = {
    "empty input": b"",
    "truncated envelope": _GOOD[:-1],
    "trailing byte after the envelope": _GOOD + b"\x00",
    "never-used msgpack byte 0xc1": b"\xc1",
    "extra trailing element in the action": envelope(deposit(extra=[0])),
    "extra trailing element in the envelope": envelope(extra=[0]),
    "missing action field": envelope(deposit()[:-1]),
    "missing envelope field (signature)": mp([deposit(), NONCE]),
    "empty action array": envelope([]),
    "str where bytes expected (address)": envelope(deposit(to="b" * 20)),
    "str where bytes expected (signature)": envelope(sig="s" * 65),
    "bytes where int expected": envelope(deposit(amount=b"\x05")),
    "bool where int expected": envelope(deposit(amount=True)),
    "int where bool expected": mp([order(is_buy=1), NONCE, SIG]),
    "float where int expected": envelope(deposit(amount=5.0)),
    "nil where int expected": envelope(deposit(ref=None)),
    "ext where bytes expected": envelope(sig=msgspec.msgpack.Ext(1, SIG)),
    "map instead of array (action)": envelope(Raw(msgspec.msgpack.encode({"t": 1, "to": TO, "amount": 5, "ref": 1}))),
    "map instead of array (envelope)": msgspec.msgpack.encode({"action": deposit(), "nonce": NONCE, "signature": SIG}),
    "unknown action tag": envelope(deposit(tag=99)),
    "string action tag": envelope(deposit(tag="1")),
    "negative amount": envelope(deposit(amount=-5)),
    "zero amount": envelope(deposit(amount=0)),
    "amount 2**63 (beyond i64)": envelope(deposit(amount=2**63)),
    "amount 2**64 - 1": envelope(deposit(amount=2**64 - 1)),
    "amount 2**64 (as a float: msgpack has no such int)": envelope(deposit(amount=float(2**64))),
    "negative ref": envelope(deposit(ref=-1)),
    "negative nonce": envelope(nonce=-1),
    "order size 0": mp([order(size=0), NONCE, SIG]),
    "order price 0": mp([order(price=0), NONCE, SIG]),
    "order tif 4": mp([order(tif=4), NONCE, SIG]),
    "market 2**32": mp([order(market=2**32), NONCE, SIG]),
    "leverage 0": mp([[16, 0, 0, True], NONCE, SIG]),
    "leverage 1001": mp([[16, 0, 1001, True], NONCE, SIG]),
    "slippage 5001 bps": mp([[11, 0, True, 10, 5001, False, 0], NONCE, SIG]),
    "isolated margin delta 2**63": mp([[17, 0, 2**63], NONCE, SIG]),
    "cancel by cloid 0": mp([[14, 0, 0], NONCE, SIG]),
    "address of 19 bytes": envelope(deposit(to=TO[:19])),
    "address of 21 bytes": envelope(deposit(to=TO + b"\x00")),
    "signature of 64 bytes": envelope(sig=SIG[:64]),
    "signature of 66 bytes": envelope(sig=SIG + b"\x00"),
    "oracle update with 65 prices": mp([[19, [[0, 1, 0]] * 65], NONCE, SIG]),
    "oversized transaction (> MAX_TX_BYTES)": _GOOD + bytes(MAX_TX_BYTES + 1 - len(_GOOD)),
}

CASES = [(name, bytes(raw), NonCanonicalEncoding, "NON_CANONICAL") for name, raw in NON_CANONICAL.items()] + [
    (name, bytes(raw), DecodeError, "DECODE") for name, raw in DECODE.items()
]


@pytest.mark.parametrize("name,raw,error,code", CASES, ids=[c[0] for c in CASES])
def test_malformed_transaction_is_rejected(name: str, raw: bytes, error: type, code: str) -> None:
    with pytest.raises(error) as info:
        decode_transaction(raw)
    assert info.value.code == code


def test_non_canonical_cases_decode_to_a_valid_value() -> None:
    """Each non-canonical case really is the same value spelled differently, not garbage."""
    for name, raw in NON_CANONICAL.items():
        value = msgspec.msgpack.decode(bytes(raw), type=Transaction)
        assert encode(value) != bytes(raw), name


def test_size_limit_is_checked_before_decoding() -> None:
    big = _GOOD + bytes(MAX_TX_BYTES - len(_GOOD))  # exactly the limit: decoded, then rejected as trailing bytes
    with pytest.raises(DecodeError, match="trailing|Input data"):
        decode_transaction(big)
    with pytest.raises(DecodeError, match="exceeds the limit"):
        decode_transaction(big + b"\x00")


def test_decoder_rejects_non_bytes_input() -> None:
    for value in ("93", None, 5, [1, 2]):
        with pytest.raises(DecodeError):
            decode_canonical(value, Transaction)  # type: ignore[arg-type]


@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_typed_errors(data: bytes) -> None:
    try:
        tx = decode_transaction(data)
    except (DecodeError, NonCanonicalEncoding):
        return
    assert encode(tx) == data


@given(action=action_strategy(), pos=st.integers(min_value=0), byte=st.integers(0, 255))
def test_mutated_canonical_bytes_decode_canonically_or_raise(action: Any, pos: int, byte: int) -> None:
    raw = bytearray(sign_transaction(ALICE, DEMO_CHAIN_ID, action, NONCE))
    raw[pos % len(raw)] = byte
    try:
        tx = decode_transaction(bytes(raw))
    except (DecodeError, NonCanonicalEncoding):
        return
    assert encode(tx) == bytes(raw)


# ---------------------------------------------------------------- through a block
# A transaction longer than MAX_TX_BYTES cannot be carried by a block at all: decode_block refuses it,
# so the producer refuses the block (InvalidBlock, nothing committed; see
# tests/test_adversarial.py::test_producer_refuses_blocks_no_verifier_could_decode).
BLOCK_CASES = [c for c in CASES if len(c[1]) <= MAX_TX_BYTES]


@pytest.mark.parametrize("name,raw,error,code", BLOCK_CASES, ids=[c[0] for c in BLOCK_CASES])
def test_malformed_transaction_in_a_block_is_a_rejected_receipt(
    funded: Any, name: str, raw: bytes, error: type, code: str
) -> None:
    executed = assert_rejected_without_effect(funded, [raw], [code])
    (receipt,) = [e for e in executed.events if getattr(e, "ok", True) is False]
    assert receipt.tx_id == tx_id(raw) and receipt.signer == b"" and receipt.action == "?"
    assert receipt.message


def test_malformed_transactions_do_not_stop_the_block(funded: Any) -> None:
    alice, bob = funded.wallet("alice"), funded.wallet("bob")
    good = alice.sign(A.Transfer(to=bob.address, amount=7 * USDC), funded.time_ms + 1000)
    bad = [
        raw for _, raw, _, _ in CASES[:: max(1, len(CASES) // 8)] if len(raw) <= MAX_TX_BYTES
    ]  # a block cannot carry an oversized one
    executed = funded.block([bad[0], good, *bad[1:]])
    codes = codes_of(executed)
    assert codes[1] == "OK" and codes.count("OK") == 1
    assert all(c in ("DECODE", "NON_CANONICAL") for i, c in enumerate(codes) if i != 1)


# ---------------------------------------------------------------- signatures through a block
def with_signature(raw: bytes, signature: bytes) -> bytes:
    """The same (canonical) transaction carrying another 65-byte signature."""
    tx = decode_transaction(raw)
    return encode(Transaction(action=tx.action, nonce=tx.nonce, signature=signature))


def split_sig(sig: bytes) -> tuple[int, int, int]:
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]


def join_sig(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def bridge_deposit(p: Any, amount: int = 10 * USDC) -> bytes:
    return p.wallet("bridge").sign(A.Deposit(to=p.wallet("alice").address, amount=amount, ref=777), p.time_ms + 1000)


def test_high_s_signature_is_rejected_even_though_it_recovers_the_signer(funded: Any) -> None:
    raw = bridge_deposit(funded)
    tx = decode_transaction(raw)
    r, s, v = split_sig(tx.signature)
    high = join_sig(r, SECP256K1_N - s, v ^ 1)
    digest = signing_digest(DEMO_CHAIN_ID, tx.nonce, encode(tx.action))
    # The malleated twin is a genuine signature by the same key ...
    pub = coincurve.PublicKey.from_signature_and_message(high, digest, hasher=None)
    assert address_from_public_key(pub) == funded.genesis.bridge
    # ... which the consensus rule refuses (low-s only).
    with pytest.raises(HighSSignature):
        recover_signer(digest, high)
    assert_rejected_without_effect(funded, [with_signature(raw, high)], ["HIGH_S"])


def _not_on_curve_r() -> int:
    """The smallest r >= 1 that is not the x coordinate of a curve point (recovery must fail)."""
    p = 2**256 - 2**32 - 977
    x = 1
    while pow((x**3 + 7) % p, (p - 1) // 2, p) == 1:
        x += 1
    return x


def test_malformed_signatures_are_bad_signature(funded: Any) -> None:
    raw = bridge_deposit(funded)
    r, s, v = split_sig(decode_transaction(raw).signature)
    bad = [
        join_sig(r, s, 2),  # recovery ids 2/3 (x = r + n) are not accepted
        join_sig(r, s, v | 0x80),  # a flipped high bit of v
        join_sig(0, s, v),
        join_sig(SECP256K1_N, s, v),
        join_sig(r, 0, v),
        join_sig(r, SECP256K1_N, v),
        join_sig(_not_on_curve_r(), s, v),
    ]
    assert_rejected_without_effect(funded, [with_signature(raw, sig) for sig in bad], ["BAD_SIGNATURE"] * len(bad))


@pytest.mark.parametrize("kind", ["deposit", "transfer"])
def test_every_single_bit_flip_of_a_signature_is_rejected(funded: Any, kind: str) -> None:
    """A flip gives a malformed signature, a high-s one, or another signer, which the action then refuses."""
    if kind == "deposit":
        raw, other_signer_code = bridge_deposit(funded), "UNAUTHORIZED"  # the recovered key is not the bridge
    else:
        raw = funded.wallet("alice").sign(
            A.Transfer(to=funded.wallet("bob").address, amount=USDC), funded.time_ms + 1000
        )
        other_signer_code = "NO_SUCH_ACCOUNT"  # the recovered key owns no account
    sig = decode_transaction(raw).signature
    flipped = []
    for bit in range(65 * 8):
        b = bytearray(sig)
        b[bit // 8] ^= 0x80 >> (bit % 8)
        flipped.append(with_signature(raw, bytes(b)))
    engine = funded.engine
    executed = engine.execute(engine.height + 1, funded.time_ms + 1000, flipped)
    engine.reset_index()
    codes = set(codes_of(executed))
    assert codes <= {"BAD_SIGNATURE", "HIGH_S", other_signer_code}, codes
    assert codes == {"BAD_SIGNATURE", "HIGH_S", other_signer_code}  # all three kinds occur
    assert_rejected_without_effect(funded, flipped, codes_of(executed))


def test_signature_for_another_chain_recovers_a_stranger(funded: Any) -> None:
    """Chain id 1338's signature over the same action recovers some other address on chain 1337."""
    alice, bob = funded.wallet("alice"), funded.wallet("bob")
    t = funded.time_ms + 1000
    other_bridge = Wallet.from_name("bridge", DEMO_CHAIN_ID + 1)
    other_alice = Wallet.from_name("alice", DEMO_CHAIN_ID + 1)
    deposit = other_bridge.sign(A.Deposit(to=alice.address, amount=5 * USDC, ref=9), t)
    transfer = other_alice.sign(A.Transfer(to=bob.address, amount=5 * USDC), t)
    before = {n: cash_of(funded, n) for n in ("alice", "bob")}
    assert_rejected_without_effect(funded, [deposit, transfer], ["UNAUTHORIZED", "NO_SUCH_ACCOUNT"])
    assert {n: cash_of(funded, n) for n in ("alice", "bob")} == before
    # The same actions signed for this chain go through.
    executed = funded.block(
        [
            bridge_deposit(funded, 5 * USDC),
            alice.sign(A.Transfer(to=bob.address, amount=5 * USDC), funded.time_ms + 1000),
        ]
    )
    assert codes_of(executed) == ["OK", "OK"]


# ---------------------------------------------------------------- vectors
def example_actions() -> list[tuple[str, Any]]:
    """One (signer name, action) per action type, with realistic demo-market values."""
    alice, bob = ALICE.address, BOB.address
    agent = Signer.from_name("alice-agent").address
    return [
        ("bridge", A.Deposit(to=alice, amount=1_000 * USDC, ref=42)),
        ("alice", A.Withdraw(amount=250 * USDC, destination=alice)),
        ("alice", A.Transfer(to=bob, amount=12_345_678)),
        (
            "alice",
            A.PlaceOrder(market=0, is_buy=True, price=90_000_000, size=15, tif=A.TIF_GTC, reduce_only=False, cloid=7),
        ),
        ("alice", A.MarketOrder(market=1, is_buy=False, size=250, slippage_bps=50, reduce_only=False, cloid=0)),
        (
            "alice",
            A.TriggerOrder(
                market=0,
                is_buy=False,
                size=10,
                trigger_price=85_000_000,
                is_take_profit=False,
                limit_price=0,
                reduce_only=True,
                cloid=8,
            ),
        ),
        ("alice", A.Cancel(market=0, oid=12)),
        ("alice", A.CancelByCloid(market=0, cloid=7)),
        ("alice", A.Modify(market=0, oid=12, price=89_500_000, size=20)),
        ("alice", A.UpdateLeverage(market=0, leverage=10, is_cross=True)),
        ("alice", A.UpdateIsolatedMargin(market=1, delta=-5 * USDC)),
        ("alice", A.ApproveAgent(agent=agent, approve=True)),
        (
            "oracle-1",
            A.OracleUpdate(
                prices=[
                    A.OraclePrice(market=0, oracle_price=90_050_000, external_price=90_060_000),
                    A.OraclePrice(market=1, oracle_price=32_010_000, external_price=0),
                ]
            ),
        ),
    ]


def to_json_fields(value: Any) -> Any:
    """A struct as a JSON object (bytes as 0x-hex), recursively."""
    if isinstance(value, msgspec.Struct):
        return {f: to_json_fields(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, (list, tuple)):
        return [to_json_fields(v) for v in value]
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def from_json_fields(t: mi.Type, value: Any) -> Any:
    """Inverse of ``to_json_fields`` for a wire type."""
    if isinstance(t, mi.StructType):
        return t.cls(**{f.name: from_json_fields(f.type, value[f.name]) for f in t.fields})
    if isinstance(t, mi.ListType):
        return [from_json_fields(t.item_type, v) for v in value]
    if isinstance(t, mi.BytesType):
        return bytes.fromhex(value.removeprefix("0x"))
    return value


def build_vectors() -> dict[str, Any]:
    vectors = []
    for i, (signer_name, action) in enumerate(example_actions()):
        signer = Signer.from_name(signer_name)
        nonce = NONCE + i
        action_bytes = encode(action)
        raw = sign_transaction(signer, DEMO_CHAIN_ID, action, nonce)
        vectors.append(
            {
                "action": type(action).__name__,
                "tag": type(action).__struct_config__.tag,
                "fields": to_json_fields(action),
                "action_hex": action_bytes.hex(),
                "signer_name": signer_name,
                "signer_address": checksum_address(signer.address),
                "nonce": nonce,
                "signing_digest_hex": signing_digest(DEMO_CHAIN_ID, nonce, action_bytes).hex(),
                "tx_hex": raw.hex(),
                "tx_id_hex": tx_id(raw).hex(),
            }
        )
    return {
        "description": (
            "Canonical msgpack of one example per action type (protocol §3.3). action_hex = encode(action); "
            "tx_hex = encode(Transaction(action, nonce, signature)) signed by the INSECURE test key "
            "tx.signing.test_secret(signer_name) over signing_digest(chain_id, nonce, action_hex); "
            "tx_id_hex = blake3(tx bytes). Byte fields are 0x-hex in 'fields'. "
            "Regenerate: python tests/test_encoding.py --write-vectors"
        ),
        "chain_id": DEMO_CHAIN_ID,
        "vectors": vectors,
        "genesis": genesis_vector(),
    }


def genesis_vector() -> dict[str, Any]:
    """The demo genesis (docs/protocol.md §3.4, §5): fields, canonical bytes and hash, with the price
    parameters (``mark_band_bps`` per market, ``oracle_fresh_ms``) as the last fields of their structs."""
    g = demo_genesis()
    return {"fields": to_json_fields(g), "genesis_hex": encode(g).hex(), "genesis_hash_hex": genesis_hash(g).hex()}


def test_encoding_vectors_file_matches() -> None:
    stored = json.loads(VECTORS_PATH.read_text())
    assert stored["chain_id"] == DEMO_CHAIN_ID
    names = [v["action"] for v in stored["vectors"]]
    assert sorted(names) == sorted(cls.__name__ for cls in A.ACTION_TYPES), "one vector per action type"
    by_name = {cls.__name__: cls for cls in A.ACTION_TYPES}
    for v in stored["vectors"]:
        action = from_json_fields(mi.type_info(by_name[v["action"]]), v["fields"])
        action_bytes = bytes.fromhex(v["action_hex"])
        assert encode(action) == action_bytes, v["action"]
        assert decode_action(action_bytes) == action
        assert action_bytes[1] == v["tag"]  # fixarray header, then the tag as a fixint
        signer = Signer.from_name(v["signer_name"])
        assert checksum_address(signer.address) == v["signer_address"]
        assert signing_digest(stored["chain_id"], v["nonce"], action_bytes).hex() == v["signing_digest_hex"]
        raw = bytes.fromhex(v["tx_hex"])
        tx = decode_transaction(raw)
        assert tx.action == action and tx.nonce == v["nonce"]
        assert sign_transaction(signer, stored["chain_id"], action, v["nonce"]) == raw
        assert tx_id(raw).hex() == v["tx_id_hex"]
    g = stored["genesis"]
    genesis = from_json_fields(mi.type_info(Genesis), g["fields"])
    assert encode(genesis).hex() == g["genesis_hex"] and genesis_hash(genesis).hex() == g["genesis_hash_hex"]
    assert decode_genesis(bytes.fromhex(g["genesis_hex"])) == genesis
    assert stored == build_vectors(), "vectors are stale: python tests/test_encoding.py --write-vectors"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-vectors"]:
        sys.exit("usage: python tests/test_encoding.py --write-vectors")
    VECTORS_PATH.write_text(json.dumps(build_vectors(), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {VECTORS_PATH}")
