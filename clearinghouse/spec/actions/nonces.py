"""Hyperliquid's nonce rule (protocol §4.6).

Per signer, the 100 highest used nonces are kept. A new nonce must be unused,
must exceed the smallest kept nonce once 100 are kept, and must lie strictly
inside (T - 2 days, T + 1 day), T the block time in ms. Nonces are usually
millisecond timestamps, so many transactions per signer per block are fine and
order among them does not matter.
"""

from __future__ import annotations

import bisect

from clearinghouse.spec.constants import MAX_NONCES, NONCE_FUTURE_WINDOW_MS, NONCE_PAST_WINDOW_MS
from clearinghouse.spec.errors import BadNonce
from clearinghouse.spec.state.access import get_nonces
from clearinghouse.spec.state.keys import nonces_key
from clearinghouse.spec.state.records import NonceSet
from clearinghouse.spec.state.working_state import WorkingState


def check_nonce(kept: list[int], nonce: int, block_time_ms: int) -> None:
    """Raise ``BadNonce`` unless ``nonce`` is acceptable (pure; protocol §4.6).

    Raises:
        BadNonce: outside (block time - 2 days, block time + 1 day), already used, or not above the
            smallest of a full set of kept nonces.
    """
    if not (block_time_ms - NONCE_PAST_WINDOW_MS < nonce < block_time_ms + NONCE_FUTURE_WINDOW_MS):
        raise BadNonce(f"nonce {nonce} outside the window ({block_time_ms} - 2d, {block_time_ms} + 1d)")
    i = bisect.bisect_left(kept, nonce)
    if i < len(kept) and kept[i] == nonce:
        raise BadNonce(f"nonce {nonce} already used")
    if len(kept) >= MAX_NONCES and nonce <= kept[0]:
        raise BadNonce(f"nonce {nonce} not above the smallest of the last {MAX_NONCES} ({kept[0]})")


def with_nonce(kept: list[int], nonce: int) -> list[int]:
    """The kept list after using ``nonce``: inserted in order, smallest dropped past 100 (protocol §4.6)."""
    out = list(kept)
    bisect.insort(out, nonce)
    if len(out) > MAX_NONCES:
        del out[0]
    return out


def use_nonce(ws: WorkingState, signer: bytes, nonce: int, block_time_ms: int) -> None:
    """Check ``nonce`` against the signer's kept nonces and record it (protocol §4.6).

    Raises:
        BadNonce: see ``check_nonce``.
    """
    rec = get_nonces(ws, signer)
    kept = rec.nonces if rec is not None else []
    check_nonce(kept, nonce, block_time_ms)
    ws.put(nonces_key(signer), NonceSet(nonces=with_nonce(kept, nonce)))
