"""Adversarial input: every class of bad bytes and bad intent is rejected, typed, and harmless.

Each bad input goes through the wire decoder (which must raise a ``tx.errors``
type, never anything else) and, wherever it can, through a block of the real
transition, where it must be rejected with a typed receipt code while the
block changes exactly what an empty block at the same height and time would
change (height, time and end-of-block price work: nothing else). No traceback
ever escapes ``Producer.block``.

Classes covered: bit flips (every bit of several transactions), truncation at
every length, oversized and negative integers, wrong types, non-canonical
msgpack (every wider form of every node), giant lists and giant blocks,
malformed / high-s / wrong-chain / foreign signatures, replayed and
out-of-window nonces, acting on another account (cancel, modify, cancel by
client id, agents), agents reaching for collateral or authority, deposits and
oracle updates from non-authorities (and from their hijacked keys), zero and
negative sizes, off-tick prices, prices outside the band, notional above
2^62, the 1000-open-order limit, leverage above the maximum, unknown markets,
tampered log files.

Every rejected input is counted in ``BAD``; the last test prints the total.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import REPO_ROOT, subprocess_env

from clearinghouse.chain.engine import Engine, VerifyFailure, replay_log
from clearinghouse.chain.producer import Producer
from clearinghouse.spec import errors as E
from clearinghouse.spec.events import OrderStatus, Receipt
from clearinghouse.spec.state.keys import FEE_POOL, INSURANCE_FUND, market_state_key
from clearinghouse.tools.demo import USDC, demo_genesis
from state import MemoryStore
from tx import actions as A
from tx.builder import Wallet
from tx.encoding import decode_block, decode_canonical, decode_transaction, encode
from tx.errors import DecodeError, NonCanonicalEncoding, TxError
from tx.logfile import FRAME_BLOCK, HEADER_SIZE, encode_frame, read_log
from tx.messages import MAX_BLOCK_TXS, MAX_TX_BYTES, Block, LogBlock, Transaction
from tx.signing import SECP256K1_N

BAD: Counter = Counter()
"""Bad inputs tried, by class (reported by the last test)."""

TYPED_CODES = {E.InvalidTransaction.code} | {cls.code for cls in E.InvalidTransaction.__subclasses__()}
BTC, ETH = 0, 1
CHAIN_ID = demo_genesis().chain_id


# ---------------------------------------------------------------- helpers
def receipts(executed: Any) -> list[Receipt]:
    return sorted((e for e in executed.events if isinstance(e, Receipt)), key=lambda r: r.tx_index)


def reject_block(
    p: Producer, txs: list[bytes], codes: str | Iterable[str] | None = None, *, what: str = ""
) -> list[str]:
    """Produce a block of ``txs``, all of which must be rejected with typed codes (``codes``: one code
    for all, a per-transaction list, or None for any typed code), and check that the block changed
    exactly what an empty block at the same height and time changes. Returns the codes."""
    engine = p.engine
    t = p.time_ms + 1000
    empty = engine.execute(engine.height + 1, t, [])
    engine.reset_index()
    empty_root = engine.preview_root(empty)
    before = dict(engine.store.iter_all())
    executed = p.block(txs, time_ms=t)
    got = [r.code for r in receipts(executed)]
    assert len(got) == len(txs), "one receipt per transaction"
    bad = [
        (i, r.action, r.code, r.message) for i, r in enumerate(receipts(executed)) if r.ok or r.code not in TYPED_CODES
    ]
    assert not bad, f"{what}: accepted or untyped: {bad[:5]}"
    if isinstance(codes, str):
        assert set(got) <= {codes}, f"{what}: {Counter(got)}"
    elif codes is not None:
        assert got == list(codes), what
    assert executed.changes == empty.changes, f"{what}: rejected transactions changed state"
    assert engine.store.root == empty_root
    assert [e for e in executed.events if not isinstance(e, Receipt)] == list(empty.events)
    after = dict(engine.store.iter_all())
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed <= set(empty.changes)
    return got


def decoder_rejects(raw: bytes, expected: type[TxError] = TxError) -> TxError:
    """The wire decoder rejects ``raw`` with a typed error (never another exception)."""
    try:
        decode_transaction(raw)
    except TxError as exc:
        assert isinstance(exc, expected), (type(exc), exc)
        return exc
    raise AssertionError(f"decoded: {raw.hex()}")


def replace_sig(raw: bytes, signature: bytes) -> bytes:
    tx = decode_transaction(raw)
    return encode(Transaction(action=tx.action, nonce=tx.nonce, signature=signature))


def sig_parts(raw: bytes) -> tuple[int, int, int]:
    sig = decode_transaction(raw).signature
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]


def five_sig(p: int) -> int:
    """``p`` rounded down to a valid tick (at most 5 significant figures)."""
    q = 10 ** max(0, len(str(p)) - 5)
    return p // q * q


def make_sig(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


# ---------------------------------------------------------------- a hand-rolled msgpack writer
def mp(obj: Any, forms: dict[tuple, str] | None = None, path: tuple = ()) -> bytes:
    """msgpack of a decoded tree; ``forms`` forces a (wider) encoding at given paths."""
    form = (forms or {}).get(path)
    if isinstance(obj, bool):
        return b"\xc3" if obj else b"\xc2"
    if isinstance(obj, int):
        form = form or _min_int_form(obj)
        return _INT_FORMS[form](obj)
    if isinstance(obj, (bytes, bytearray)):
        n = len(obj)
        form = form or ("c4" if n < 256 else "c5" if n < 65536 else "c6")
        return {
            "c4": b"\xc4" + n.to_bytes(1, "big"),
            "c5": b"\xc5" + n.to_bytes(2, "big"),
            "c6": b"\xc6" + n.to_bytes(4, "big"),
        }[form] + bytes(obj)
    if isinstance(obj, str):
        data = obj.encode()
        n = len(data)
        form = form or ("fix" if n < 32 else "d9" if n < 256 else "da")
        head = {
            "fix": bytes([0xA0 | n]) if n < 32 else None,
            "d9": b"\xd9" + n.to_bytes(1, "big"),
            "da": b"\xda" + n.to_bytes(2, "big"),
            "db": b"\xdb" + n.to_bytes(4, "big"),
        }[form]
        return head + data
    if isinstance(obj, list):
        n = len(obj)
        form = form or ("fix" if n < 16 else "dc" if n < 65536 else "dd")
        head = {
            "fix": bytes([0x90 | n]) if n < 16 else None,
            "dc": b"\xdc" + n.to_bytes(2, "big"),
            "dd": b"\xdd" + n.to_bytes(4, "big"),
        }[form]
        return head + b"".join(mp(x, forms, path + (i,)) for i, x in enumerate(obj))
    if obj is None:
        return b"\xc0"
    raise TypeError(type(obj))


_INT_FORMS: dict[str, Callable[[int], bytes]] = {
    "fix": lambda v: bytes([v & 0xFF]),
    "cc": lambda v: b"\xcc" + v.to_bytes(1, "big"),
    "cd": lambda v: b"\xcd" + v.to_bytes(2, "big"),
    "ce": lambda v: b"\xce" + v.to_bytes(4, "big"),
    "cf": lambda v: b"\xcf" + v.to_bytes(8, "big"),
    "d0": lambda v: b"\xd0" + v.to_bytes(1, "big", signed=True),
    "d1": lambda v: b"\xd1" + v.to_bytes(2, "big", signed=True),
    "d2": lambda v: b"\xd2" + v.to_bytes(4, "big", signed=True),
    "d3": lambda v: b"\xd3" + v.to_bytes(8, "big", signed=True),
}
_INT_RANGE = {
    "fix": (-32, 127),
    "cc": (0, 2**8 - 1),
    "cd": (0, 2**16 - 1),
    "ce": (0, 2**32 - 1),
    "cf": (0, 2**64 - 1),
    "d0": (-(2**7), 2**7 - 1),
    "d1": (-(2**15), 2**15 - 1),
    "d2": (-(2**31), 2**31 - 1),
    "d3": (-(2**63), 2**63 - 1),
}


def _min_int_form(v: int) -> str:
    order = ["fix", "cc", "cd", "ce", "cf"] if v >= 0 else ["fix", "d0", "d1", "d2", "d3"]
    return next(f for f in order if _INT_RANGE[f][0] <= v <= _INT_RANGE[f][1])


def wider_forms(obj: Any) -> list[str]:
    """Every non-canonical msgpack form that still encodes ``obj`` exactly."""
    if isinstance(obj, bool) or obj is None:
        return []
    if isinstance(obj, int):
        canon = _min_int_form(obj)
        return [f for f, (lo, hi) in _INT_RANGE.items() if lo <= obj <= hi and f != canon]
    if isinstance(obj, (bytes, bytearray)):
        return [f for f in ("c5", "c6") if not (f == "c5" and len(obj) >= 65536)] + ([] if len(obj) < 256 else [])
    if isinstance(obj, str):
        return [f for f in ("d9", "da", "db") if f != ("fix" if len(obj) < 32 else "d9")]
    if isinstance(obj, list):
        return [f for f in ("dc", "dd") if f != ("fix" if len(obj) < 16 else "dc")]
    return []


def nodes(obj: Any, path: tuple = ()) -> Iterable[tuple[tuple, Any]]:
    yield path, obj
    if isinstance(obj, list):
        for i, x in enumerate(obj):
            yield from nodes(x, path + (i,))


def with_leaf(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    out = list(obj)
    out[path[0]] = with_leaf(obj[path[0]], path[1:], value)
    return out


# ---------------------------------------------------------------- the world
class World:
    """A chain with funded traders, an agent, a resting order with a client id, positions and prices."""

    def __init__(self) -> None:
        self.p = Producer(demo_genesis())
        self.w = {
            n: self.p.wallet(n)
            for n in (
                "bridge",
                "oracle-1",
                "oracle-2",
                "oracle-3",
                "alice",
                "bob",
                "carol",
                "mallory",
                "alice-agent",
                "mm",
            )
        }
        self.block(
            [
                self.tx("bridge", A.Deposit(to=self.addr(n), amount=a * USDC, ref=i))
                for i, (n, a) in enumerate(
                    [("alice", 100_000), ("bob", 100_000), ("carol", 100_000), ("mm", 1_000_000)]
                )
            ]
            + [
                self.tx(
                    o,
                    A.OracleUpdate(
                        prices=[
                            A.OraclePrice(market=0, oracle_price=90_000_000, external_price=90_000_000),
                            A.OraclePrice(market=1, oracle_price=32_000_000, external_price=32_000_000),
                        ]
                    ),
                )
                for o in ("oracle-1", "oracle-2", "oracle-3")
            ]
        )
        ex = self.block(
            [
                self.tx("alice", A.ApproveAgent(agent=self.addr("alice-agent"), approve=True)),
                self.tx(
                    "alice",
                    A.PlaceOrder(
                        market=BTC, is_buy=True, price=80_000_000, size=100, tif=A.TIF_GTC, reduce_only=False, cloid=42
                    ),
                ),
                self.tx("carol", A.UpdateLeverage(market=BTC, leverage=10, is_cross=False)),
                self.tx(
                    "mm",
                    A.PlaceOrder(
                        market=BTC,
                        is_buy=False,
                        price=90_100_000,
                        size=1_000,
                        tif=A.TIF_GTC,
                        reduce_only=False,
                        cloid=7,
                    ),
                ),
            ]
        )
        self.alice_oid = next(
            e.oid
            for e in ex.events
            if isinstance(e, OrderStatus) and e.owner == self.addr("alice") and e.status == "resting"
        )
        self.block(
            [
                self.tx(
                    "carol",
                    A.PlaceOrder(
                        market=BTC, is_buy=True, price=90_100_000, size=200, tif=A.TIF_IOC, reduce_only=False, cloid=0
                    ),
                )
            ]
        )

    def addr(self, name: str) -> bytes:
        return self.w[name].address

    @property
    def t(self) -> int:
        return self.p.time_ms + 1000

    def tx(self, name: str, action: Any, nonce: int | None = None) -> bytes:
        return self.w[name].sign(action, self.t, nonce)

    def block(self, txs: list[bytes]) -> Any:
        ex = self.p.block(txs)
        assert all(r.ok for r in receipts(ex)), [(r.action, r.code, r.message) for r in receipts(ex) if not r.ok]
        return ex

    def mark(self, market: int) -> int:
        return self.p.engine.view().get(market_state_key(market)).mark_price

    def samples(self) -> dict[str, bytes]:
        """Valid transactions whose bit-flipped variants can only fail (a flipped tx recovers to an
        unfunded random key, or is no longer the authority): one per action shape."""
        return {
            "transfer": self.tx("alice", A.Transfer(to=self.addr("bob"), amount=5 * USDC)),
            "withdraw": self.tx("bob", A.Withdraw(amount=7 * USDC, destination=self.addr("bob"))),
            # Crosses mm's ask: flipped to a random, unfunded signer it fails margin, whatever the TIF.
            "order": self.tx(
                "alice",
                A.PlaceOrder(
                    market=BTC, is_buy=True, price=90_100_000, size=10, tif=A.TIF_GTC, reduce_only=False, cloid=0
                ),
            ),
            "cancel": self.tx("alice", A.Cancel(market=BTC, oid=self.alice_oid)),
            "deposit": self.tx("bridge", A.Deposit(to=self.addr("bob"), amount=USDC, ref=5)),
            "oracle": self.tx(
                "oracle-1", A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=91_000_000, external_price=0)])
            ),
            "market": self.tx(
                "bob", A.MarketOrder(market=ETH, is_buy=True, size=10, slippage_bps=100, reduce_only=False, cloid=0)
            ),
            "trigger": self.tx(
                "carol",
                A.TriggerOrder(
                    market=BTC,
                    is_buy=False,
                    size=200,
                    trigger_price=80_000_000,
                    is_take_profit=False,
                    limit_price=0,
                    reduce_only=True,
                    cloid=0,
                ),
            ),
        }


@pytest.fixture(scope="module")
def world() -> World:
    return World()


# ---------------------------------------------------------------- bytes: flips, truncation
FLIP_SAMPLES = ["transfer", "order", "cancel", "deposit", "oracle"]


@pytest.mark.parametrize("kind", FLIP_SAMPLES)
def test_every_bit_flip_is_rejected(world: World, kind: str) -> None:
    raw = world.samples()[kind]
    flipped = []
    decoded_anyway = 0
    for i in range(len(raw) * 8):
        b = bytearray(raw)
        b[i // 8] ^= 1 << (i % 8)
        b = bytes(b)
        try:
            decode_transaction(b)
            decoded_anyway += 1  # a different, well-formed transaction: the block must reject it
        except TxError:
            pass
        flipped.append(b)
    codes = reject_block(world.p, flipped, what=f"bit flips of {kind}")
    BAD["bit flip"] += len(flipped)
    # Flips land in the framing (DECODE/NON_CANONICAL), the signature (BAD_SIGNATURE/HIGH_S) or the
    # signed content (a random signer: no funds, no order, no authority).
    assert decoded_anyway > 0 and Counter(codes)["DECODE"] > 0
    # The original still works afterwards: nothing it depends on was touched.
    if kind in ("transfer", "deposit", "oracle"):
        assert receipts(world.p.block([raw]))[0].ok


def test_truncation_at_every_length(world: World) -> None:
    raws = list(world.samples().values())
    cut = [raw[:n] for raw in raws for n in range(len(raw))]
    for c in cut:
        decoder_rejects(c, DecodeError)
    reject_block(world.p, cut, "DECODE", what="truncations")
    BAD["truncation"] += len(cut)
    # Blocks and log entries cut anywhere: typed errors too.
    entry = world.p.blocks[1]  # a small block from the world's set-up
    for payload, type_ in ((encode(entry.block), Block), (encode(entry), LogBlock)):
        for n in range(len(payload)):
            with pytest.raises(DecodeError):
                decode_canonical(payload[:n], type_)
            BAD["truncation"] += 1


def test_trailing_bytes_are_rejected(world: World) -> None:
    raws = [raw + extra for raw in world.samples().values() for extra in (b"\x00", b"\xc0", b"\x93\x01\x02\x03", raw)]
    for r in raws:
        decoder_rejects(r, DecodeError)
    reject_block(world.p, raws, "DECODE", what="trailing bytes")
    BAD["trailing bytes"] += len(raws)


# ---------------------------------------------------------------- integers, types, canonical form
def test_out_of_range_integers_are_decode_errors(world: World) -> None:
    """2**64-1 and 2**63 where an i64-bounded value belongs, negatives where unsigned; 2**64 and
    below -2**63 cannot even be written in msgpack."""
    bad = []
    for raw in world.samples().values():
        tree = msgspec.msgpack.decode(raw)
        for path, leaf in nodes(tree):
            if isinstance(leaf, int) and not isinstance(leaf, bool) and path != (0, 0):  # (0, 0) is the action tag
                for value in (2**64 - 1, 2**63, -1, -(2**63)):
                    mutated = mp(with_leaf(tree, path, value))
                    try:
                        decode_transaction(mutated)
                    except TxError:
                        bad.append(mutated)
                    # else: in range for that slot (a U64 nonce, client id or reference): a well-formed
                    # transaction from whatever key the signature now recovers to (bit flips cover those).
    for value in (2**64, -(2**63) - 1, 10**30):
        with pytest.raises(OverflowError):
            msgspec.msgpack.encode(value)
        BAD["oversized integer"] += 1
    reject_block(world.p, bad, what="out-of-range integers")
    BAD["oversized integer"] += len(bad)
    # Signed properly, extreme in-range values reach the handlers and are rejected there, typed.
    m = five_sig(world.mark(BTC))
    cases = [
        (world.tx("alice", A.Transfer(to=world.addr("bob"), amount=2**63 - 1)), "INSUFFICIENT_BALANCE"),
        (world.tx("alice", A.Withdraw(amount=2**63 - 1, destination=world.addr("alice"))), "INSUFFICIENT_BALANCE"),
        (
            world.tx(
                "alice",
                A.PlaceOrder(market=BTC, is_buy=True, price=m, size=2**62, tif=A.TIF_GTC, reduce_only=False, cloid=0),
            ),
            "INVALID_SIZE",
        ),
        (
            world.tx(
                "alice",
                A.PlaceOrder(
                    market=BTC, is_buy=True, price=2**63 - 1, size=1, tif=A.TIF_GTC, reduce_only=False, cloid=0
                ),
            ),
            "INVALID_PRICE",
        ),
        (
            world.tx(
                "alice",
                A.PlaceOrder(
                    market=BTC, is_buy=False, price=9 * 10**18, size=2**63 - 1, tif=A.TIF_IOC, reduce_only=True, cloid=0
                ),
            ),
            "INVALID_PRICE",
        ),
        (
            world.tx(
                "alice",
                A.MarketOrder(market=BTC, is_buy=True, size=2**63 - 1, slippage_bps=5000, reduce_only=False, cloid=0),
            ),
            "INVALID_SIZE",
        ),
        (
            world.tx(
                "alice",
                A.TriggerOrder(
                    market=BTC,
                    is_buy=True,
                    size=2**62,
                    trigger_price=m,
                    is_take_profit=True,
                    limit_price=0,
                    reduce_only=False,
                    cloid=0,
                ),
            ),
            "INVALID_SIZE",
        ),
        (
            world.tx(
                "alice",
                A.TriggerOrder(
                    market=BTC,
                    is_buy=True,
                    size=1,
                    trigger_price=m,
                    is_take_profit=True,
                    limit_price=2**64 - 1,
                    reduce_only=False,
                    cloid=0,
                ),
            ),
            "INVALID_PRICE",
        ),
        (world.tx("alice", A.Modify(market=BTC, oid=world.alice_oid, price=m // 100, size=2**63 - 1)), "INVALID_PRICE"),
        (world.tx("alice", A.Cancel(market=BTC, oid=2**64 - 1)), "ORDER_NOT_FOUND"),
        (world.tx("alice", A.CancelByCloid(market=BTC, cloid=2**63 - 1)), "ORDER_NOT_FOUND"),
        (world.tx("alice", A.UpdateLeverage(market=2**32 - 1, leverage=1, is_cross=True)), "UNKNOWN_MARKET"),
        (world.tx("carol", A.UpdateIsolatedMargin(market=BTC, delta=-(2**63))), "INVALID_AMOUNT"),
        (world.tx("carol", A.UpdateIsolatedMargin(market=BTC, delta=2**63 - 1)), "INSUFFICIENT_BALANCE"),
        (
            world.tx(
                "oracle-1", A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=2**63 - 1, external_price=0)])
            ),
            "INVALID_ORACLE",
        ),
        (
            world.tx(
                "oracle-1", A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=1, external_price=2**64 - 1)])
            ),
            "INVALID_ORACLE",
        ),
        (world.tx("bridge", A.Deposit(to=world.addr("alice"), amount=2**63 - 1, ref=0)), "INVALID_AMOUNT"),
    ]
    reject_block(world.p, [c[0] for c in cases], [c[1] for c in cases], what="extreme values")
    BAD["oversized integer"] += len(cases)


WRONG_TYPES: list[Any] = [None, True, 1.5, "1", b"\x01", [], [1], -1]


def test_wrong_types_in_every_field(world: World) -> None:
    bad = []
    for raw in world.samples().values():
        tree = msgspec.msgpack.decode(raw)
        for path, leaf in nodes(tree):
            if not path:
                continue
            for value in WRONG_TYPES:
                if type(value) is type(leaf) and not isinstance(leaf, list):
                    continue
                mutated = msgspec.msgpack.encode(with_leaf(tree, path, value))
                if mutated == raw:
                    continue
                try:
                    decode_transaction(mutated)
                except TxError:
                    pass
                bad.append(mutated)
        # A map instead of an array, and nothing at all.
        bad.append(msgspec.msgpack.encode({"action": tree[0], "nonce": tree[1], "signature": tree[2]}))
    bad += [b"", b"\xc0", b"\xc1", b"\xff", msgspec.msgpack.encode("transfer"), msgspec.msgpack.encode(12345)]
    reject_block(world.p, bad, what="wrong types")
    BAD["wrong type"] += len(bad)


def test_every_non_canonical_encoding_is_rejected(world: World) -> None:
    """Every node of every sample, written in every wider msgpack form: same value, other bytes.
    Accepting one would give one signed transaction two ids (malleability)."""
    variants = []
    for raw in world.samples().values():
        tree = msgspec.msgpack.decode(raw)
        assert mp(tree) == raw  # the writer reproduces the canonical bytes
        for path, node in nodes(tree):
            for form in wider_forms(node):
                variant = mp(tree, {path: form})
                assert variant != raw and msgspec.msgpack.decode(variant) == tree
                decoder_rejects(variant, NonCanonicalEncoding)
                variants.append(variant)
    reject_block(world.p, variants, "NON_CANONICAL", what="non-canonical")
    BAD["non-canonical"] += len(variants)
    # Blocks too: a header field written wide.
    tree = msgspec.msgpack.decode(encode(world.p.blocks[-1].block))
    with pytest.raises(NonCanonicalEncoding):
        decode_block(mp(tree, {(0, 0): "cf"}))
    BAD["non-canonical"] += 1


# ---------------------------------------------------------------- size: giant lists and blocks
def test_giant_inputs(world: World) -> None:
    oracle = world.w["oracle-1"]
    huge = oracle.sign(
        A.OracleUpdate(
            prices=[A.OraclePrice(market=i % 2, oracle_price=1 + i, external_price=0) for i in range(10**4)]
        ),
        world.t,
    )
    assert len(huge) > MAX_TX_BYTES
    over = oracle.sign(
        A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=1, external_price=0)] * (A.MAX_ORACLE_PRICES + 1)),
        world.t,
    )
    assert len(over) <= MAX_TX_BYTES
    full = oracle.sign(
        A.OracleUpdate(
            prices=[A.OraclePrice(market=i, oracle_price=1, external_price=0) for i in range(A.MAX_ORACLE_PRICES)]
        ),
        world.t,
    )
    dup = oracle.sign(
        A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=90_000_000, external_price=0)] * 2), world.t
    )
    padding = b"\xc6" + (MAX_TX_BYTES).to_bytes(4, "big") + bytes(MAX_TX_BYTES)
    decl = [
        b"\xdd\xff\xff\xff\xff",
        b"\x93\xc6\xff\xff\xff\xff\x00",
        b"\x93" + b"\x91" * 10_000 + b"\x00",
        b"\x93\x92\x13" + b"\x91" * 5_000,
    ]
    for raw in [huge, over, padding] + decl:
        decoder_rejects(raw, DecodeError)
    # Longer than MAX_TX_BYTES: no block may carry it (the producer refuses, decode_block too).
    for raw in (huge, padding):
        with pytest.raises(E.InvalidBlock):
            world.p.block([raw])
    codes = reject_block(world.p, [over, *decl, full, dup], what="giant inputs")
    assert codes == ["DECODE"] * (1 + len(decl)) + ["INVALID_ORACLE", "INVALID_ORACLE"]
    BAD["giant input"] += 5 + len(decl)

    # A block with one transaction too many, or one transaction too long, is not a block.
    header = world.p.blocks[-1].block.header
    for txs in ([b"\x01"] * (MAX_BLOCK_TXS + 1), [bytes(MAX_TX_BYTES + 1)]):
        with pytest.raises(DecodeError):
            decode_block(encode(Block(header=header, txs=txs)))
        BAD["giant input"] += 1


def test_producer_refuses_blocks_no_verifier_could_decode(producer: Any) -> None:
    """The producer must not commit a block that its own log could not carry (regression:
    Engine.produce used to commit, then fail to decode on replay)."""
    p = producer(log=True)
    height, root = p.engine.height, p.engine.store.root
    for txs in ([b"\x01"] * (MAX_BLOCK_TXS + 1), [bytes(MAX_TX_BYTES + 1)], [b"\x01", "text"]):
        with pytest.raises((E.InvalidBlock, ValueError)):  # the producer's own guard says ValueError
            p.block(txs)
        assert (p.engine.height, p.engine.store.root) == (height, root)
        with pytest.raises(E.InvalidBlock):
            p.engine.produce(p.time_ms + 1000, txs)
        assert (p.engine.height, p.engine.store.root) == (height, root)
        BAD["giant input"] += 1
    # A log entry above the frame limit (the witness grows with the block) is refused before commit too.
    import clearinghouse.chain.engine as engine_module

    real = engine_module.MAX_FRAME
    engine_module.MAX_FRAME = 1_000
    try:
        with pytest.raises(E.InvalidBlock):
            p.block([bytes(100)] * 20)
    finally:
        engine_module.MAX_FRAME = real
    assert (p.engine.height, p.engine.store.root) == (height, root)
    p.block([bytes(MAX_TX_BYTES)])  # the largest allowed still works (and is rejected as a tx)
    p.close()
    store = MemoryStore()
    replay_log(Engine(store), str(p.log_path))
    assert store.root == p.engine.store.root


def test_open_order_limit(producer: Any) -> None:
    p = producer(fund={"alice": 100_000_000 * USDC})
    alice = p.wallet("alice")
    t = p.time_ms + 1000
    orders = [
        alice.sign(
            A.PlaceOrder(
                market=BTC,
                is_buy=True,
                price=80_000_000 - 1000 * (i % 50),
                size=1,
                tif=A.TIF_ALO,
                reduce_only=False,
                cloid=i + 1,
            ),
            t,
        )
        for i in range(1000)
    ]
    assert all(r.ok for r in receipts(p.block(orders)))
    t = p.time_ms + 1000
    more = [
        alice.sign(
            A.PlaceOrder(market=ETH, is_buy=True, price=30_000_000, size=10, tif=A.TIF_GTC, reduce_only=False, cloid=0),
            t,
        ),
        alice.sign(
            A.TriggerOrder(
                market=BTC,
                is_buy=False,
                size=1,
                trigger_price=85_000_000,
                is_take_profit=False,
                limit_price=0,
                reduce_only=False,
                cloid=0,
            ),
            t,
        ),
        alice.sign(
            A.PlaceOrder(market=BTC, is_buy=True, price=80_000_000, size=1, tif=A.TIF_GTC, reduce_only=False, cloid=1),
            t,
        ),
    ]
    reject_block(p, more, ["LIMIT_EXCEEDED", "LIMIT_EXCEEDED", "DUPLICATE_CLOID"], what="open-order limit")
    BAD["limit"] += len(more)


# ---------------------------------------------------------------- signatures
def test_bad_signatures(world: World) -> None:
    raw = world.tx("alice", A.Transfer(to=world.addr("bob"), amount=USDC))
    r, s, v = sig_parts(raw)
    high_s = replace_sig(raw, make_sig(r, SECP256K1_N - s, v ^ 1))
    decode_transaction(high_s)  # well-formed: the transition rejects it
    malformed = [
        make_sig(0, s, v),
        make_sig(r, 0, v),
        make_sig(SECP256K1_N, s, v),
        make_sig(r, SECP256K1_N, v),
        make_sig(2**256 - 1, s, v),
        make_sig(r, s, 2),
        make_sig(r, s, 27),
        make_sig(r, s, 28),
        make_sig(r, s, 255),
    ]
    rng = random.Random(3)
    garbage = [bytes(rng.getrandbits(8) for _ in range(64)) + bytes([rng.getrandbits(1)]) for _ in range(20)]
    txs = [high_s] + [replace_sig(raw, m) for m in malformed] + [replace_sig(raw, g) for g in garbage]
    codes = reject_block(world.p, txs, what="bad signatures")
    assert codes[0] == "HIGH_S"
    assert set(codes[1 : 1 + len(malformed)]) == {"BAD_SIGNATURE"}
    assert set(codes[1 + len(malformed) :]) <= {"BAD_SIGNATURE", "HIGH_S", "NO_SUCH_ACCOUNT"}
    BAD["bad signature"] += len(txs)
    # A signature of the wrong length is not an envelope.
    tree = msgspec.msgpack.decode(raw)
    for n in (0, 64, 66, 130):
        bad = msgspec.msgpack.encode(with_leaf(tree, (2,), bytes(n)))
        decoder_rejects(bad, DecodeError)
        BAD["bad signature"] += 1


def test_wrong_chain_and_foreign_signatures(world: World) -> None:
    """A signature from another chain id, or lifted from another transaction, recovers to some
    other key: it never acts for the original signer or authority."""
    other_chain = {n: Wallet.from_name(n, CHAIN_ID + 1) for n in ("alice", "bridge", "oracle-1")}
    t = world.t
    txs = [
        other_chain["alice"].sign(A.Transfer(to=world.addr("bob"), amount=USDC), t),
        other_chain["alice"].sign(A.Cancel(market=BTC, oid=world.alice_oid), t),
        other_chain["bridge"].sign(A.Deposit(to=world.addr("mallory"), amount=USDC, ref=1), t),
        other_chain["oracle-1"].sign(
            A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=1_000, external_price=0)]), t
        ),
    ]
    lifted_from = world.tx("bridge", A.Deposit(to=world.addr("bob"), amount=USDC, ref=9))
    forged = world.w["mallory"].sign(A.Deposit(to=world.addr("mallory"), amount=10**12, ref=9), t)
    txs.append(replace_sig(forged, decode_transaction(lifted_from).signature))
    codes = reject_block(world.p, txs, what="wrong chain")
    # The recovered strangers own no account (NO_SUCH_ACCOUNT); a stranger is no bridge or publisher.
    assert codes == ["NO_SUCH_ACCOUNT", "NO_SUCH_ACCOUNT", "UNAUTHORIZED", "UNAUTHORIZED", "UNAUTHORIZED"]
    BAD["wrong-chain or foreign signature"] += len(txs)


# ---------------------------------------------------------------- nonces
def test_replayed_and_out_of_window_nonces(world: World) -> None:
    p = world.p
    sent = world.tx("alice", A.Transfer(to=world.addr("bob"), amount=USDC))
    assert receipts(p.block([sent]))[0].ok
    T = p.time_ms + 1000
    alice = world.w["alice"]
    used = decode_transaction(sent).nonce
    day = 24 * 3_600_000
    txs = [
        sent,  # the same bytes again
        alice.sign(A.Transfer(to=world.addr("carol"), amount=USDC), T, nonce=used),  # same nonce, other action
        alice.sign(A.Transfer(to=world.addr("carol"), amount=USDC), T, nonce=T - 2 * day),  # window is open
        alice.sign(A.Transfer(to=world.addr("carol"), amount=USDC), T, nonce=T + day),
        alice.sign(A.Transfer(to=world.addr("carol"), amount=USDC), T, nonce=0),
        alice.sign(A.Transfer(to=world.addr("carol"), amount=USDC), T, nonce=2**64 - 1),
    ]
    reject_block(p, txs, "BAD_NONCE", what="nonces")
    BAD["nonce"] += len(txs)
    # Two transactions with one nonce in one block: the second is a replay.
    T = p.time_ms + 1000
    pair = [
        alice.sign(A.Transfer(to=world.addr("carol"), amount=USDC), T, nonce=T + 5),
        alice.sign(A.Transfer(to=world.addr("bob"), amount=USDC), T, nonce=T + 5),
    ]
    ex = p.block(pair)
    assert [r.code for r in receipts(ex)] == ["OK", "BAD_NONCE"]
    BAD["nonce"] += 1


def test_nonce_below_the_kept_hundred(producer: Any) -> None:
    p = producer(fund={"alice": 1_000 * USDC})
    alice = p.wallet("alice")
    T = p.time_ms + 1000
    p.block([alice.sign(A.Transfer(to=p.wallet("bob").address, amount=1), T, nonce=T + i) for i in range(1, 101)])
    T2 = p.time_ms + 1000
    reject_block(
        p,
        [alice.sign(A.Transfer(to=p.wallet("bob").address, amount=1), T2, nonce=T)],
        "BAD_NONCE",
        what="below the kept 100",
    )
    BAD["nonce"] += 1


# ---------------------------------------------------------------- acting on another's account
def test_acting_on_another_account(world: World) -> None:
    """There is no field naming whose account an action is for: the signer's own is used. So
    bob reaching for alice's order finds nothing (ORDER_NOT_FOUND), and so on."""
    oid = world.alice_oid
    txs = [
        (world.tx("bob", A.Cancel(market=BTC, oid=oid)), "ORDER_NOT_FOUND"),
        (world.tx("bob", A.Modify(market=BTC, oid=oid, price=81_000_000, size=1)), "ORDER_NOT_FOUND"),
        (world.tx("bob", A.CancelByCloid(market=BTC, cloid=42)), "ORDER_NOT_FOUND"),
        (world.tx("alice", A.Cancel(market=ETH, oid=oid)), "ORDER_NOT_FOUND"),  # right owner, wrong market
        (
            world.tx("bob", A.UpdateIsolatedMargin(market=BTC, delta=-USDC)),
            "INVALID_MARGIN_MODE",
        ),  # carol's isolated position
        (world.tx("bob", A.ApproveAgent(agent=world.addr("alice-agent"), approve=False)), "UNAUTHORIZED"),
        (world.tx("bob", A.ApproveAgent(agent=world.addr("alice-agent"), approve=True)), "UNAUTHORIZED"),
        (world.tx("bob", A.ApproveAgent(agent=world.addr("alice"), approve=True)), "UNAUTHORIZED"),
        (world.tx("alice-agent", A.Cancel(market=BTC, oid=2)), "ORDER_NOT_FOUND"),  # mm's order, via alice's agent
        (
            world.tx("mallory", A.Transfer(to=world.addr("mallory"), amount=1)),
            "NO_SUCH_ACCOUNT",
        ),  # mallory was never funded
        (world.tx("alice", A.Transfer(to=INSURANCE_FUND, amount=1)), "RESERVED_ACCOUNT"),
        (world.tx("alice", A.Transfer(to=FEE_POOL, amount=1)), "RESERVED_ACCOUNT"),
        (world.tx("bridge", A.Deposit(to=INSURANCE_FUND, amount=1, ref=0)), "RESERVED_ACCOUNT"),
    ]
    reject_block(world.p, [t for t, _ in txs], [c for _, c in txs], what="another's account")
    BAD["another's account"] += len(txs)


def test_agent_privilege_escalation(world: World) -> None:
    """An agent trades for its owner and does nothing else."""
    m = world.addr("mallory")
    txs = [
        (world.tx("alice-agent", A.Withdraw(amount=1, destination=m)), "UNAUTHORIZED"),
        (world.tx("alice-agent", A.Transfer(to=m, amount=1)), "UNAUTHORIZED"),
        (world.tx("alice-agent", A.ApproveAgent(agent=m, approve=True)), "UNAUTHORIZED"),
        (world.tx("alice-agent", A.ApproveAgent(agent=world.addr("alice-agent"), approve=False)), "UNAUTHORIZED"),
        (world.tx("alice-agent", A.UpdateLeverage(market=BTC, leverage=50, is_cross=True)), "UNAUTHORIZED"),
        (world.tx("alice-agent", A.UpdateIsolatedMargin(market=BTC, delta=1)), "UNAUTHORIZED"),
        (world.tx("alice-agent", A.Deposit(to=m, amount=1, ref=0)), "UNAUTHORIZED"),
        (
            world.tx("alice-agent", A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=1, external_price=0)])),
            "UNAUTHORIZED",
        ),
    ]
    reject_block(world.p, [t for t, _ in txs], [c for _, c in txs], what="agent escalation")
    BAD["agent escalation"] += len(txs)


def test_authorities_and_used_keys_cannot_be_taken_as_agents(producer: Any) -> None:
    """Regression: an account could approve the bridge's or an oracle publisher's key as its agent,
    after which every deposit or price update that key signed was refused as an agent's (halting
    deposits and prices), or approve any used key whose account had been emptied, after which that
    key's orders traded for the attacker. Agents must be fresh: never an authority, never a key that
    has signed anything."""
    p = producer(fund={"alice": 1_000 * USDC, "bob": 1 * USDC})
    alice, bob, bridge = p.wallet("alice"), p.wallet("bob"), p.wallet("bridge")
    t = p.time_ms + 1000
    assert receipts(p.block([bob.sign(A.Withdraw(amount=USDC, destination=bob.address), t)]))[
        0
    ].ok  # bob's account is now empty
    t = p.time_ms + 1000
    hijacks = [
        alice.sign(A.ApproveAgent(agent=bridge.address, approve=True), t),
        alice.sign(A.ApproveAgent(agent=p.wallet("oracle-2").address, approve=True), t),  # never published yet
        alice.sign(A.ApproveAgent(agent=bob.address, approve=True), t),
    ]
    reject_block(p, hijacks, "UNAUTHORIZED", what="hijack keys")
    BAD["agent escalation"] += len(hijacks)
    t = p.time_ms + 1000
    ex = p.block(
        [
            bridge.sign(A.Deposit(to=bob.address, amount=USDC, ref=1), t),
            p.wallet("oracle-2").sign(
                A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=90_000_000, external_price=0)]), t
            ),
        ]
    )
    assert [r.code for r in receipts(ex)] == ["OK", "OK"]


def test_non_authorities(world: World) -> None:
    txs = [
        (world.tx("alice", A.Deposit(to=world.addr("alice"), amount=USDC, ref=1)), "UNAUTHORIZED"),
        (world.tx("oracle-1", A.Deposit(to=world.addr("oracle-1"), amount=USDC, ref=1)), "UNAUTHORIZED"),
        (
            world.tx("alice", A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=1_000, external_price=0)])),
            "UNAUTHORIZED",
        ),
        (
            world.tx("bridge", A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=1_000, external_price=0)])),
            "UNAUTHORIZED",
        ),
        (world.tx("mallory", A.OracleUpdate(prices=[])), "UNAUTHORIZED"),
    ]
    reject_block(world.p, [t for t, _ in txs], [c for _, c in txs], what="non-authorities")
    BAD["non-authority"] += len(txs)


# ---------------------------------------------------------------- order parameters
def test_bad_order_parameters(world: World) -> None:
    m = 90_000_000
    assert world.mark(BTC) * 95 // 100 < m < world.mark(BTC) * 105 // 100
    tree = msgspec.msgpack.decode(
        world.tx("alice", A.PlaceOrder(market=BTC, is_buy=True, price=m, size=1, tif=0, reduce_only=False, cloid=0))
    )

    def order(**kw: Any) -> bytes:
        base = dict(market=BTC, is_buy=True, price=m - 1_000_000, size=1, tif=A.TIF_GTC, reduce_only=False, cloid=0)
        base.update(kw)
        return world.tx("alice", A.PlaceOrder(**base))

    cases = [
        (order(size=0), "DECODE"),
        (mp(with_leaf(tree, (0, 4), -5)), "DECODE"),  # negative size
        (order(price=0), "DECODE"),
        (order(tif=4), "DECODE"),
        (order(price=m + 1), "INVALID_PRICE"),  # off tick: 8 significant figures
        (order(price=90_001_500), "INVALID_PRICE"),  # 6 significant figures, not a whole USDC
        (order(price=m * 2), "INVALID_PRICE"),  # outside the 95% band
        (order(price=m // 25), "INVALID_PRICE"),
        (order(price=m // 18, size=1), "MIN_NOTIONAL"),  # inside the band, 5 USDC
        (order(size=2**62 // (m - 1_000_000) + 1), "INVALID_SIZE"),  # notional above 2^62
        (order(market=2), "UNKNOWN_MARKET"),
        (order(market=2**32 - 1), "UNKNOWN_MARKET"),
        (order(cloid=42), "DUPLICATE_CLOID"),
        (order(reduce_only=True), "REDUCE_ONLY"),
        (order(tif=A.TIF_ALO, is_buy=True, price=90_200_000), "ALO_WOULD_TAKE"),
        (order(tif=A.TIF_FOK, price=90_100_000, size=10_000), "FOK_NOT_FILLED"),
        (
            world.tx(
                "alice", A.MarketOrder(market=BTC, is_buy=False, size=1, slippage_bps=5001, reduce_only=False, cloid=0)
            ),
            "DECODE",
        ),
        (
            world.tx(
                "alice",
                A.TriggerOrder(
                    market=BTC,
                    is_buy=True,
                    size=1,
                    trigger_price=m + 1,
                    is_take_profit=True,
                    limit_price=0,
                    reduce_only=False,
                    cloid=0,
                ),
            ),
            "INVALID_PRICE",
        ),
        (
            world.tx(
                "alice",
                A.TriggerOrder(
                    market=BTC,
                    is_buy=True,
                    size=1,
                    trigger_price=m * 3,
                    is_take_profit=True,
                    limit_price=0,
                    reduce_only=False,
                    cloid=0,
                ),
            ),
            "INVALID_PRICE",
        ),
        (
            world.tx(
                "alice",
                A.TriggerOrder(
                    market=9,
                    is_buy=True,
                    size=1,
                    trigger_price=m,
                    is_take_profit=True,
                    limit_price=0,
                    reduce_only=False,
                    cloid=0,
                ),
            ),
            "UNKNOWN_MARKET",
        ),
        (world.tx("alice", A.Modify(market=BTC, oid=world.alice_oid, price=m + 1, size=1)), "INVALID_PRICE"),
        (world.tx("alice", A.Modify(market=BTC, oid=world.alice_oid, price=m, size=0)), "DECODE"),
        (world.tx("alice", A.UpdateLeverage(market=BTC, leverage=51, is_cross=True)), "INVALID_LEVERAGE"),
        (world.tx("alice", A.UpdateLeverage(market=ETH, leverage=26, is_cross=True)), "INVALID_LEVERAGE"),
        (world.tx("alice", A.UpdateLeverage(market=ETH, leverage=1000, is_cross=True)), "INVALID_LEVERAGE"),
        (world.tx("alice", A.UpdateLeverage(market=ETH, leverage=0, is_cross=True)), "DECODE"),
        (world.tx("alice", A.UpdateLeverage(market=ETH, leverage=1001, is_cross=True)), "DECODE"),
        (world.tx("alice", A.UpdateLeverage(market=5, leverage=1, is_cross=True)), "UNKNOWN_MARKET"),
        (
            world.tx("carol", A.UpdateLeverage(market=BTC, leverage=10, is_cross=True)),
            "INVALID_MARGIN_MODE",
        ),  # open isolated position
        (world.tx("carol", A.UpdateIsolatedMargin(market=BTC, delta=0)), "INVALID_AMOUNT"),
        (world.tx("alice", A.UpdateIsolatedMargin(market=BTC, delta=USDC)), "INVALID_MARGIN_MODE"),
        (world.tx("alice", A.Transfer(to=world.addr("alice"), amount=1)), "UNAUTHORIZED"),
        (world.tx("alice", A.Withdraw(amount=0, destination=world.addr("alice"))), "DECODE"),
        (
            world.tx("oracle-1", A.OracleUpdate(prices=[A.OraclePrice(market=2, oracle_price=1, external_price=0)])),
            "INVALID_ORACLE",
        ),
        (
            world.tx("oracle-1", A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=0, external_price=0)])),
            "DECODE",
        ),
        (
            world.tx(
                "oracle-1", A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=10**12 + 1, external_price=0)])
            ),
            "INVALID_ORACLE",
        ),
    ]
    reject_block(world.p, [t for t, _ in cases], [c for _, c in cases], what="order parameters")
    BAD["bad parameter"] += len(cases)


# ---------------------------------------------------------------- tampered logs
def _frames(path: Path) -> list[Any]:
    return list(read_log(str(path)))


def test_tampered_log_is_refused(demo_log: Path, tmp_path: Path) -> None:
    """Flipped bytes fail the frame checksum; a re-checksummed edit fails the roots at its height."""
    data = demo_log.read_bytes()
    frames = _frames(demo_log)
    block_frame = frames[3]
    rng = random.Random(11)
    for _ in range(30):
        pos = rng.randrange(block_frame.offset, block_frame.offset + 5 + len(block_frame.payload) + 8)
        bad = bytearray(data)
        bad[pos] ^= 1 << rng.randrange(8)
        path = tmp_path / "flipped.log"
        path.write_bytes(bytes(bad))
        with pytest.raises(TxError) as info:
            replay_log(Engine(MemoryStore()), str(path))
        assert info.value.code in ("LOG_CHECKSUM", "LOG_FRAME_KIND", "LOG_FRAME_TOO_LARGE", "LOG_TRUNCATED")
        BAD["tampered log"] += 1

    # Re-framed with a valid checksum: an altered transaction, header root or height.
    entry = decode_canonical(block_frame.payload, LogBlock)
    h = entry.block.header
    edits = {
        "tx_root": msgspec.structs.replace(entry, block=msgspec.structs.replace(entry.block, txs=entry.block.txs[:-1])),
        "state_root": msgspec.structs.replace(
            entry, block=msgspec.structs.replace(entry.block, header=msgspec.structs.replace(h, state_root=bytes(32)))
        ),
        "events_root": msgspec.structs.replace(
            entry, block=msgspec.structs.replace(entry.block, header=msgspec.structs.replace(h, events_root=bytes(32)))
        ),
        "parent_hash": msgspec.structs.replace(
            entry, block=msgspec.structs.replace(entry.block, header=msgspec.structs.replace(h, parent_hash=bytes(32)))
        ),
        "height": msgspec.structs.replace(
            entry, block=msgspec.structs.replace(entry.block, header=msgspec.structs.replace(h, height=h.height + 1))
        ),
    }
    for what, edited in edits.items():
        new = encode_frame(FRAME_BLOCK, encode(edited))
        end = block_frame.offset + 5 + len(block_frame.payload) + 8
        path = tmp_path / f"{what}.log"
        path.write_bytes(data[: block_frame.offset] + new + data[end:])
        with pytest.raises(VerifyFailure) as failure:
            replay_log(Engine(MemoryStore()), str(path))
        assert failure.value.what == what
        assert failure.value.height == (h.height + 1 if what == "height" else h.height)
        BAD["tampered log"] += 1
    # And the CLI says so in one line, exit 1, no traceback.
    out = subprocess.run(
        [sys.executable, "-m", "clearinghouse.tools.cli", "verify", str(tmp_path / "state_root.log")],
        env=subprocess_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr and f"height {h.height}" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "clearinghouse.tools.cli", "verify", str(tmp_path / "flipped.log")],
        env=subprocess_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr and out.stderr.startswith("error: LOG_")
    assert data[:HEADER_SIZE] == (tmp_path / "flipped.log").read_bytes()[:HEADER_SIZE]


# ---------------------------------------------------------------- nondeterminism in the code itself
CONSENSUS_PACKAGES = (
    "clearinghouse/spec",
    "clearinghouse/chain/engine.py",
    "clearinghouse/chain/producer.py",
    "tx",
    "state",
)
"""Everything that decides consensus state or its commitment and must be a pure function of the log: the
transition (``clearinghouse/spec``), the engine and producer that compute header roots, the wire format and
the state store. The tools (``clearinghouse/tools``) and segment scheduling (``chain/segments.py``,
``chain/distributed.py``, which time workers but take every root from the engine) are outside."""


def test_consensus_code_has_no_floats_clocks_or_hash_seeds() -> None:
    """No float literal or float() call, no builtin hash()/id() (PYTHONHASHSEED, addresses), no wall
    clock or randomness (time, datetime, random, uuid, secrets, os.urandom) in consensus modules.
    Together with the fresh-process, other-hash-seed replay of tests/test_state_machine.py this
    covers nondeterminism by construction and by observation. (Divisions are on Fractions.)"""
    import ast

    found = []
    files = []
    for entry in CONSENSUS_PACKAGES:
        path = REPO_ROOT / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    assert len(files) > 40, files  # the scan is not vacuous: the whole core is read
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            where = f"{f.relative_to(REPO_ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and isinstance(node.value, float):
                found.append(f"{where} float literal {node.value}")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("float", "hash", "id")
            ):
                found.append(f"{where} {node.func.id}()")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for n in names:
                    if n.split(".")[0] in ("time", "datetime", "random", "uuid", "secrets"):
                        found.append(f"{where} imports {n}")
            elif isinstance(node, ast.Attribute) and node.attr == "urandom":
                found.append(f"{where} os.urandom")
    assert not found, found
    BAD["nondeterminism source"] += 1


# ---------------------------------------------------------------- the fuzz harness, without atheris
def _fuzz_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fuzz_transition", REPO_ROOT / "tools" / "fuzz_transition.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_fuzz_harness_smoke() -> None:
    """The atheris harness's check runs (on random mutations) without atheris installed."""
    fuzz = _fuzz_module()
    rng = random.Random(5)
    for _ in range(150):
        fuzz.one_input(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200))))
    BAD["fuzz smoke"] += 150


def test_fuzz_harness_with_atheris() -> None:
    atheris = pytest.importorskip("atheris")
    fuzz = _fuzz_module()
    assert callable(fuzz.TestOneInput) and atheris.FuzzedDataProvider(b"\x00\x01").ConsumeBool() in (True, False)
    for seed in range(20):
        fuzz.TestOneInput(bytes([seed]) * (seed + 1))


# ---------------------------------------------------------------- the count
def test_zz_report_bad_input_count(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs last (file order): how many bad inputs the tests above fed in, by class."""
    total = sum(BAD.values())
    with capsys.disabled():
        print(f"\n[adversarial] {total} bad inputs rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(BAD.items())))
    assert total > 0
    if os.environ.get("ADVERSARIAL_MIN"):
        assert total >= int(os.environ["ADVERSARIAL_MIN"])
