"""State key layout: one namespace byte, then fixed-width big-endian fields.

Fixed widths make keys sort in the order the transition needs (protocol §7.1):
resting orders by market, side, price priority, then order id (time priority);
positions by market, then address. See docs/protocol.md "State keys".
"""

from __future__ import annotations

from typing import Any, NamedTuple

from clearinghouse.spec.state import records as r
from tx.messages import MarketSpec

NS_CHAIN = b"G"
NS_MARKET_SPEC = b"M"
NS_MARKET_STATE = b"S"
NS_ACCOUNT = b"A"
NS_NONCES = b"N"
NS_AGENT = b"a"
NS_POSITION = b"P"
NS_ORDER = b"O"
NS_TRIGGER = b"T"
NS_ORDER_LOC = b"I"
NS_CLOID = b"C"
NS_ORACLE_SUB = b"Q"
NS_LIQ_REF = b"R"

U64_MAX = 2**64 - 1

SIDE_BID = 0
SIDE_ASK = 1
TRIGGER_ABOVE = 0
"""Fires when mark >= trigger price; keys ascend by price."""
TRIGGER_BELOW = 1
"""Fires when mark <= trigger price; keys ascend by (U64_MAX - price)."""

INSURANCE_FUND = bytes(19) + b"\x01"
"""Reserved address of the insurance fund account (it can hold positions: backstop)."""
FEE_POOL = bytes(19) + b"\x02"
"""Reserved address of the fee pool account."""
SYSTEM_ACCOUNTS = (INSURANCE_FUND, FEE_POOL)

NAMESPACE_NAMES = {
    NS_CHAIN: "chain",
    NS_MARKET_SPEC: "market_spec",
    NS_MARKET_STATE: "market_state",
    NS_ACCOUNT: "account",
    NS_NONCES: "nonces",
    NS_AGENT: "agent",
    NS_POSITION: "position",
    NS_ORDER: "order",
    NS_TRIGGER: "trigger",
    NS_ORDER_LOC: "order_locator",
    NS_CLOID: "cloid",
    NS_ORACLE_SUB: "oracle_submission",
    NS_LIQ_REF: "liquidation_reference",
}

RECORD_TYPES: dict[bytes, Any] = {
    NS_CHAIN: r.Chain,
    NS_MARKET_SPEC: MarketSpec,
    NS_MARKET_STATE: r.MarketState,
    NS_ACCOUNT: r.Account,
    NS_NONCES: r.NonceSet,
    NS_AGENT: r.Agent,
    NS_POSITION: r.Position,
    NS_ORDER: r.Order,
    NS_TRIGGER: r.Trigger,
    NS_ORDER_LOC: r.OrderLocator,
    NS_CLOID: r.CloidLocator,
    NS_ORACLE_SUB: r.OracleSubmission,
    NS_LIQ_REF: r.LiquidationRef,
}

CHAIN_KEY = NS_CHAIN + b"chain"

MARKET_NAMESPACES = (NS_MARKET_SPEC, NS_MARKET_STATE, NS_POSITION, NS_ORDER, NS_TRIGGER, NS_ORACLE_SUB)
"""Namespaces whose keys begin, after the namespace byte, with the u32 market index."""


def u32(n: int) -> bytes:
    """``n`` as 4 big-endian bytes, so keys sort numerically (protocol §7.1)."""
    return n.to_bytes(4, "big")


def u64(n: int) -> bytes:
    """``n`` as 8 big-endian bytes, so keys sort numerically (protocol §7.1)."""
    return n.to_bytes(8, "big")


def account_key(addr: bytes) -> bytes:
    """``A || address``: an account's record (protocol §7.1)."""
    return NS_ACCOUNT + addr


def nonces_key(addr: bytes) -> bytes:
    """``N || address``: the signer's highest nonces (protocol §7.1)."""
    return NS_NONCES + addr


def agent_key(agent: bytes) -> bytes:
    """``a || agent``: an agent key's approval, naming its owner (protocol §7.1)."""
    return NS_AGENT + agent


def market_spec_key(market: int) -> bytes:
    """``M || u32(market)``: the market's genesis spec (protocol §7.1)."""
    return NS_MARKET_SPEC + market.to_bytes(4, "big")  # u32, inlined: built on every read


def market_state_key(market: int) -> bytes:
    """``S || u32(market)``: the market's prices, EMAs and accumulators (protocol §7.1)."""
    return NS_MARKET_STATE + market.to_bytes(4, "big")  # u32, inlined: built on every read


def position_key(market: int, addr: bytes) -> bytes:
    """``P || u32(market) || address``: one account's position in a market (protocol §7.1)."""
    return NS_POSITION + market.to_bytes(4, "big") + addr  # u32, inlined: built on every read


def position_prefix(market: int) -> bytes:
    """``P || u32(market)``: the prefix of every position in a market, in address order (protocol §7.1)."""
    return NS_POSITION + u32(market)


def order_key(market: int, is_buy: bool, price: int, oid: int) -> bytes:
    """Book key: ascending order is price-time priority within a side (protocol §7.1)."""
    side = SIDE_BID if is_buy else SIDE_ASK
    price_key = U64_MAX - price if is_buy else price
    return NS_ORDER + u32(market) + bytes([side]) + u64(price_key) + u64(oid)


def book_side_prefix(market: int, is_buy: bool) -> bytes:
    """``O || u32(market) || side``: the prefix of one side of a book, in price-time priority (protocol §7.1)."""
    return NS_ORDER + u32(market) + bytes([SIDE_BID if is_buy else SIDE_ASK])


def trigger_key(market: int, direction: int, trigger_price: int, oid: int) -> bytes:
    """``T || u32(market) || direction || price key || u64(oid)``: a waiting trigger order (protocol §7.1).

    Triggers firing above the mark sort by ascending trigger price, those firing below by descending
    price (stored as ``U64_MAX - price``), so the first key of each direction is the next to fire.
    """
    price_key = trigger_price if direction == TRIGGER_ABOVE else U64_MAX - trigger_price
    return NS_TRIGGER + u32(market) + bytes([direction]) + u64(price_key) + u64(oid)


def trigger_prefix(market: int, direction: int) -> bytes:
    """``T || u32(market) || direction``: the prefix of one direction's triggers (protocol §7.1)."""
    return NS_TRIGGER + u32(market) + bytes([direction])


def order_loc_key(oid: int) -> bytes:
    """``I || u64(oid)``: where the open order ``oid`` is stored (protocol §7.1)."""
    return NS_ORDER_LOC + u64(oid)


def cloid_key(owner: bytes, cloid: int) -> bytes:
    """``C || owner || u64(cloid)``: the open order of ``owner`` with client id ``cloid`` (protocol §7.1)."""
    return NS_CLOID + owner + u64(cloid)


def oracle_sub_key(market: int, publisher: bytes) -> bytes:
    """``Q || u32(market) || publisher``: a publisher's latest oracle submission (protocol §7.1)."""
    return NS_ORACLE_SUB + u32(market) + publisher


def liq_ref_key(account: bytes, unit: int, market: int) -> bytes:
    """``R || account || u32(unit) || u32(market)``: a position's reference price from its trigger (protocol §7.1)."""
    return NS_LIQ_REF + account + u32(unit) + u32(market)


# ---------------------------------------------------------------- parsing keys (the only place that slices them)
class LiqRefKey(NamedTuple):
    """The parts of a liquidation-reference key ``R + account + u32(unit) + u32(market)`` (protocol §7.1)."""

    account: bytes
    unit: int
    market: int


def key_market(key: bytes) -> int:
    """The market index of a market-scoped key (``M``, ``S``, ``P``, ``O``, ``T``, ``Q``), bytes 1..4 (protocol §7.1).

    Raises:
        ValueError: ``key`` is not in a market-scoped namespace.
    """
    if key[:1] not in MARKET_NAMESPACES or len(key) < 5:
        raise ValueError(f"not a market-scoped key: {key.hex()}")
    return int.from_bytes(key[1:5], "big")


def key_account(key: bytes) -> bytes:
    """The 20-byte address an account-scoped key (``A``, ``N``, ``a``) is about (protocol §7.1).

    Raises:
        ValueError: ``key`` is not in an account-scoped namespace.
    """
    if key[:1] not in (NS_ACCOUNT, NS_NONCES, NS_AGENT) or len(key) != 21:
        raise ValueError(f"not an account key: {key.hex()}")
    return key[1:]


def position_owner(key: bytes) -> bytes:
    """The owner of the position stored under ``position_key(market, owner)`` (protocol §7.1).

    Raises:
        ValueError: ``key`` is not a position key.
    """
    if key[:1] != NS_POSITION or len(key) != 25:
        raise ValueError(f"not a position key: {key.hex()}")
    return key[5:]


def parse_liq_ref_key(key: bytes) -> LiqRefKey:
    """Split ``liq_ref_key(account, unit, market)`` back into its parts (protocol §7.1).

    Raises:
        ValueError: ``key`` is not a liquidation-reference key.
    """
    if key[:1] != NS_LIQ_REF or len(key) != 29:
        raise ValueError(f"not a liquidation-reference key: {key.hex()}")
    return LiqRefKey(key[1:21], int.from_bytes(key[21:25], "big"), int.from_bytes(key[25:29], "big"))


def record_type(key: bytes) -> Any:
    """The record type stored under ``key`` (by its namespace byte; protocol §7.1)."""
    return RECORD_TYPES[key[:1]]


def namespace_name(key: bytes) -> str:
    """The readable name of ``key``'s namespace (``"unknown"`` for a byte no namespace uses; protocol §7.1)."""
    return NAMESPACE_NAMES.get(key[:1], "unknown")


def describe_key(key: bytes) -> str:
    """A human-readable rendering of a state key, for diffs and verify reports (protocol §7.1)."""
    ns = key[:1]
    body = key[1:]
    name = namespace_name(key)
    if ns in (NS_ACCOUNT, NS_NONCES, NS_AGENT) and len(body) == 20:
        return f"{name}/0x{body.hex()}"
    if ns == NS_POSITION and len(body) == 24:
        return f"{name}/{int.from_bytes(body[:4], 'big')}/0x{body[4:].hex()}"
    if ns in (NS_MARKET_SPEC, NS_MARKET_STATE) and len(body) == 4:
        return f"{name}/{int.from_bytes(body, 'big')}"
    if ns == NS_ORDER and len(body) == 21:
        m = int.from_bytes(body[:4], "big")
        side = "bid" if body[4] == SIDE_BID else "ask"
        return f"{name}/{m}/{side}/oid={int.from_bytes(body[13:], 'big')}"
    if ns == NS_ORDER_LOC and len(body) == 8:
        return f"{name}/{int.from_bytes(body, 'big')}"
    if ns == NS_CHAIN:
        return f"{name}/{body.decode('ascii', 'replace')}"
    return f"{name}/{body.hex()}"
