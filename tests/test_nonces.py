"""Hyperliquid's nonce rule (protocol §4.6), as a pure function and through blocks.

Per signer the 100 highest used nonces are kept; a new nonce must be unused,
exceed the smallest kept one once 100 are kept, and lie strictly inside
(T - 2 days, T + 1 day), T the block time. A rejected transaction does not
consume its nonce.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import assert_rejected_without_effect, cash_of, codes_of
from hypothesis import given
from hypothesis import strategies as st

from clearinghouse.spec.actions.nonces import check_nonce, use_nonce, with_nonce
from clearinghouse.spec.constants import MAX_NONCES, NONCE_FUTURE_WINDOW_MS, NONCE_PAST_WINDOW_MS
from clearinghouse.spec.errors import BadNonce
from clearinghouse.spec.state.keys import nonces_key
from clearinghouse.tools.demo import USDC
from tx.actions import Transfer, Withdraw

T = 1_767_225_600_000
DAY = 24 * 3600 * 1000


def test_window_constants() -> None:
    assert NONCE_PAST_WINDOW_MS == 2 * DAY and NONCE_FUTURE_WINDOW_MS == DAY
    assert MAX_NONCES == 100


# ---------------------------------------------------------------- pure rule
@pytest.mark.parametrize(
    "nonce,ok",
    [
        (T - 2 * DAY, False),  # the lower edge is excluded
        (T - 2 * DAY + 1, True),
        (T, True),
        (T + DAY - 1, True),
        (T + DAY, False),  # the upper edge is excluded
        (0, False),
        (2**64 - 1, False),
    ],
)
def test_window_edges(nonce: int, ok: bool) -> None:
    if ok:
        check_nonce([], nonce, T)
    else:
        with pytest.raises(BadNonce, match="outside the window"):
            check_nonce([], nonce, T)


def test_reuse_is_rejected() -> None:
    kept = [T - 5, T, T + 5]
    for n in kept:
        with pytest.raises(BadNonce, match="already used"):
            check_nonce(kept, n, T)
    check_nonce(kept, T + 1, T)
    check_nonce(kept, T - 6, T)  # fewer than 100 kept: below the smallest is fine


def test_hundred_kept_rule() -> None:
    kept: list[int] = []
    for i in range(MAX_NONCES):
        n = T + 1000 + i
        check_nonce(kept, n, T)
        kept = with_nonce(kept, n)
    assert kept == [T + 1000 + i for i in range(MAX_NONCES)]
    smallest = kept[0]
    with pytest.raises(BadNonce, match="not above the smallest"):
        check_nonce(kept, smallest - 1, T)  # unused, inside the window, but too low
    with pytest.raises(BadNonce, match="already used"):
        check_nonce(kept, smallest, T)
    check_nonce(kept, kept[-1] + 1, T)  # above: accepted
    after = with_nonce(kept, kept[-1] + 1)
    assert len(after) == MAX_NONCES and after[0] == smallest + 1  # the smallest is dropped
    # A gap above the smallest may still be filled.
    gappy = with_nonce(with_nonce(kept[:50] + kept[51:], kept[-1] + 1), kept[-1] + 2)
    assert len(gappy) == MAX_NONCES and kept[50] not in gappy
    check_nonce(gappy, kept[50], T)
    # The dropped smallest can never come back.
    with pytest.raises(BadNonce):
        check_nonce(after, smallest, T)


def test_with_nonce_does_not_mutate_its_input() -> None:
    kept = [T, T + 2]
    assert with_nonce(kept, T + 1) == [T, T + 1, T + 2]
    assert kept == [T, T + 2]


@given(st.lists(st.integers(T - 2 * DAY - 10, T + DAY + 10), max_size=400))
def test_nonce_sequence_model(attempts: list[int]) -> None:
    """Over any sequence of attempts: no nonce is ever accepted twice, and the
    kept list is always the (at most 100) highest accepted nonces, ascending."""
    kept: list[int] = []
    accepted: list[int] = []
    for n in attempts:
        try:
            check_nonce(kept, n, T)
        except BadNonce:
            in_window = T - 2 * DAY < n < T + DAY
            assert not in_window or n in accepted or (len(kept) == MAX_NONCES and n <= kept[0])
            continue
        assert n not in accepted
        accepted.append(n)
        kept = with_nonce(kept, n)
        assert kept == sorted(accepted)[-MAX_NONCES:]


# ---------------------------------------------------------------- through blocks
def transfer(p: Any, name: str, nonce: int, to: str = "carol", amount: int = USDC) -> bytes:
    return p.wallet(name).sign(Transfer(to=p.wallet(to).address, amount=amount), 0, nonce=nonce)


def kept_nonces(p: Any, name: str) -> list[int]:
    rec = p.engine.view().get(nonces_key(p.wallet(name).address))
    return rec.nonces if rec is not None else []


def test_replayed_transaction_is_rejected_in_a_later_block_and_in_the_same_block(funded: Any) -> None:
    t = funded.time_ms + 1000
    tx = transfer(funded, "alice", t)
    assert codes_of(funded.block([tx])) == ["OK"]
    assert_rejected_without_effect(funded, [tx], ["BAD_NONCE"])
    # Same nonce, different action: still a reuse.
    assert_rejected_without_effect(funded, [transfer(funded, "alice", t, amount=2 * USDC)], ["BAD_NONCE"])
    t2 = funded.time_ms + 1000
    twice = transfer(funded, "alice", t2)
    assert codes_of(funded.block([twice, twice])) == ["OK", "BAD_NONCE"]


def test_nonces_are_per_signer(funded: Any) -> None:
    t = funded.time_ms + 1000
    assert codes_of(funded.block([transfer(funded, "alice", t), transfer(funded, "bob", t)])) == ["OK", "OK"]


@pytest.mark.parametrize(
    "offset,code",
    [(-2 * DAY, "BAD_NONCE"), (-2 * DAY + 1, "OK"), (DAY - 1, "OK"), (DAY, "BAD_NONCE")],
)
def test_window_edges_through_a_block(funded: Any, offset: int, code: str) -> None:
    block_time = funded.time_ms + 1000
    tx = transfer(funded, "alice", block_time + offset)
    if code == "OK":
        assert codes_of(funded.block([tx], time_ms=block_time)) == ["OK"]
        assert kept_nonces(funded, "alice") == [block_time + offset]
    else:
        assert_rejected_without_effect(funded, [tx], [code])
        assert kept_nonces(funded, "alice") == []


def test_hundred_kept_rule_through_blocks(funded: Any) -> None:
    base = funded.time_ms + 1000
    first = [transfer(funded, "alice", base + i, amount=1) for i in range(MAX_NONCES)]
    assert codes_of(funded.block(first[:60])) == ["OK"] * 60
    assert codes_of(funded.block(first[60:])) == ["OK"] * 40
    assert kept_nonces(funded, "alice") == [base + i for i in range(MAX_NONCES)]
    below = transfer(funded, "alice", base - 1, amount=1)  # unused and in the window, but below the smallest
    assert_rejected_without_effect(funded, [below], ["BAD_NONCE"])
    above = transfer(funded, "alice", base + MAX_NONCES + 5, amount=1)
    assert codes_of(funded.block([above])) == ["OK"]
    kept = kept_nonces(funded, "alice")
    assert len(kept) == MAX_NONCES and kept[0] == base + 1 and kept[-1] == base + MAX_NONCES + 5
    # The dropped nonce is now permanently unusable; a gap above the smallest is still usable.
    assert_rejected_without_effect(funded, [transfer(funded, "alice", base, amount=1)], ["BAD_NONCE"])
    assert codes_of(funded.block([transfer(funded, "alice", base + MAX_NONCES + 1, amount=1)])) == ["OK"]


def test_rejected_transaction_does_not_consume_its_nonce(funded: Any) -> None:
    t = funded.time_ms + 1000
    alice = funded.wallet("alice")
    too_much = alice.sign(Withdraw(amount=10_000 * USDC, destination=alice.address), 0, nonce=t)
    assert_rejected_without_effect(funded, [too_much], ["INSUFFICIENT_BALANCE"])
    assert kept_nonces(funded, "alice") == []
    assert codes_of(funded.block([transfer(funded, "alice", t)])) == ["OK"]
    assert kept_nonces(funded, "alice") == [t]
    # In one block: the rejected transaction goes first, a valid one reuses its nonce.
    t2 = funded.time_ms + 1000
    bad = alice.sign(Transfer(to=alice.address, amount=USDC), 0, nonce=t2)  # transfer to self: UNAUTHORIZED
    assert codes_of(funded.block([bad, transfer(funded, "alice", t2)])) == ["UNAUTHORIZED", "OK"]
    assert cash_of(funded, "alice") == 998 * USDC


def test_use_nonce_writes_the_kept_list(funded: Any) -> None:
    from clearinghouse.spec.state.working_state import WorkingState

    ws = WorkingState(funded.engine.store, funded.engine.index)
    addr = funded.wallet("dave").address
    use_nonce(ws, addr, T + 5, T)
    use_nonce(ws, addr, T + 3, T)
    assert ws.get(nonces_key(addr)).nonces == [T + 3, T + 5]
    with pytest.raises(BadNonce):
        use_nonce(ws, addr, T + 3, T)
