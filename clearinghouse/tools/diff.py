"""Comparing two stores key by key (the determinism harness behind ``clearinghouse diff``).

In the spirit of dYdX's shadow apps: two replicas that should agree are
compared per namespace by a hash of their sorted (key, value) pairs; where a
namespace differs, the differing keys are listed with both values decoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import blake3
import msgspec

from clearinghouse.spec.state.keys import NAMESPACE_NAMES, describe_key, key_market, record_type


def namespace_hashes(store: Any) -> dict[str, tuple[int, str]]:
    """namespace name -> (record count, blake3 over its sorted key/value pairs)."""
    out: dict[str, tuple[int, Any]] = {}
    for key, value in store.iter_all():
        name = NAMESPACE_NAMES.get(key[:1], f"unknown-{key[:1].hex()}")
        count, h = out.get(name, (0, None))
        if h is None:
            h = blake3.blake3()
        h.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value)
        out[name] = (count + 1, h)
    return {k: (c, h.hexdigest()) for k, (c, h) in sorted(out.items())}


def hexify(obj: Any) -> Any:
    """Bytes anywhere in a builtin structure become 0x-hex strings (for JSON and tables)."""
    if isinstance(obj, bytes):
        return "0x" + obj.hex()
    if isinstance(obj, list):
        return [hexify(x) for x in obj]
    if isinstance(obj, dict):
        return {k: hexify(v) for k, v in obj.items()}
    return obj


def named_fields(rec: Any) -> Any:
    """A record as a dict of its field names (array-like structs have none on the wire)."""
    if isinstance(rec, msgspec.Struct):
        return {f: named_fields(getattr(rec, f)) for f in rec.__struct_fields__}
    if isinstance(rec, list):
        return [named_fields(x) for x in rec]
    return hexify(rec)


USDC_FIELDS = frozenset(
    {"cash", "cost", "iso_cash", "deposits", "withdrawals", "amount", "impact_notional", "min_notional"}
)
"""Record fields in micro-USDC: JSON gets a ``<field>_usdc`` decimal companion."""
SIZE_FIELDS = frozenset({"size", "orig_size", "open_interest"})
"""Record fields in lots: JSON gets a ``<field>_base`` companion (needs the market's decimals)."""
PRICE_FIELDS = frozenset(
    {
        "price",
        "oracle_price",
        "external_price",
        "mark_price",
        "last_trade_price",
        "trigger_price",
        "limit_price",
        "reference_price",
        "initial_price",
    }
)
"""Record fields in price units: JSON gets a ``<field>_usdc`` companion (needs the market's decimals)."""

_MARKET_NAMESPACES = frozenset(b"MSPOT")


def market_specs(store: Any) -> dict[int, Any]:
    """market index -> MarketSpec, from a store's market specs (undecodable ones left out)."""
    from clearinghouse.spec.state.keys import NS_MARKET_SPEC

    out = {}
    for key, raw in store.scan_prefix(NS_MARKET_SPEC):
        try:
            out[key_market(key)] = msgspec.msgpack.decode(raw, type=record_type(key))
        except Exception:
            continue
    return out


def market_decimals(store: Any) -> dict[int, int]:
    """market index -> sz_decimals, from a store's market specs."""
    return {m: spec.sz_decimals for m, spec in market_specs(store).items()}


def key_with_market_name(key: bytes, description: str, names: dict[int, str]) -> str:
    """``position/0/0x...`` -> ``position/BTC/0x...`` where the key names a market."""
    if key[:1] and key[0] in _MARKET_NAMESPACES and len(key) >= 5:
        m = key_market(key)
        head, sep, rest = description.partition("/")
        if sep and m in names and (rest == str(m) or rest.startswith(f"{m}/")):
            return f"{head}/{names[m]}{rest[len(str(m)) :]}"
    return description


def with_companions(key: bytes, fields: dict[str, Any], decimals: dict[int, int]) -> dict[str, Any]:
    """``fields`` plus human-unit companions: ``_usdc`` for money and prices, ``_base`` for sizes."""
    from clearinghouse.tools.units import lots_to_size, micro_to_usdc, units_to_price

    market = key_market(key) if key[:1] and key[0] in _MARKET_NAMESPACES and len(key) >= 5 else None
    d = decimals.get(market) if market is not None else None
    out = dict(fields)
    for name, value in fields.items():
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        if name in USDC_FIELDS:
            out[name + "_usdc"] = micro_to_usdc(value)
        elif name in SIZE_FIELDS and d is not None:
            out[name + "_base"] = lots_to_size(value, d)
        elif name in PRICE_FIELDS and d is not None:
            out[name + "_usdc"] = units_to_price(value, d)
    return out


def _decode(key: bytes, raw: bytes | None, decimals: dict[int, int] | None = None) -> Any:
    if raw is None:
        return None
    try:
        fields = named_fields(msgspec.msgpack.decode(raw, type=record_type(key)))
    except Exception:  # unknown namespace or damaged value: show the bytes
        return raw.hex()
    return with_companions(key, fields, decimals or {}) if isinstance(fields, dict) else fields


def differing_keys(
    a: Any, b: Any, limit: int = 200, decimals: dict[int, int] | None = None, market_names: dict[int, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Keys present in only one store, or with different values, in key order (merge walk)."""
    ia, ib = a.iter_all(), b.iter_all()
    ka = next(ia, None)
    kb = next(ib, None)
    shown = 0
    while (ka is not None or kb is not None) and shown < limit:
        if kb is None or (ka is not None and ka[0] < kb[0]):
            assert ka is not None  # the loop runs while one side has a key
            key, va, vb = ka[0], ka[1], None
            ka = next(ia, None)
        elif ka is None or kb[0] < ka[0]:
            key, va, vb = kb[0], None, kb[1]
            kb = next(ib, None)
        else:
            key, va, vb = ka[0], ka[1], kb[1]
            ka, kb = next(ia, None), next(ib, None)
            if va == vb:
                continue
        shown += 1
        described = describe_key(key)
        yield {
            "key": described,
            "key_name": key_with_market_name(key, described, market_names or {}),
            "key_hex": key.hex(),
            "a": _decode(key, va, decimals),
            "b": _decode(key, vb, decimals),
        }
