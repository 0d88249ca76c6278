"""Comparing two stores key by key (the determinism harness behind ``clearinghouse diff``).

In the spirit of dYdX's shadow apps: two replicas that should agree are
compared per namespace by a hash of their sorted (key, value) pairs; where a
namespace differs, the differing keys are listed with both values decoded.
"""

from __future__ import annotations

from typing import Any, Iterator

import blake3
import msgspec

from .keys import NAMESPACE_NAMES, describe_key, record_type


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


def _decode(key: bytes, raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return named_fields(msgspec.msgpack.decode(raw, type=record_type(key)))
    except Exception:  # unknown namespace or damaged value: show the bytes
        return raw.hex()


def differing_keys(a: Any, b: Any, limit: int = 200) -> Iterator[dict[str, Any]]:
    """Keys present in only one store, or with different values, in key order (merge walk)."""
    ia, ib = a.iter_all(), b.iter_all()
    ka = next(ia, None)
    kb = next(ib, None)
    shown = 0
    while (ka is not None or kb is not None) and shown < limit:
        if kb is None or (ka is not None and ka[0] < kb[0]):
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
        yield {"key": describe_key(key), "key_hex": key.hex(), "a": _decode(key, va), "b": _decode(key, vb)}
