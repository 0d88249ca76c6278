"""ADL ranking indexes as integer ratios (protocol §12.10): clearinghouse/spec/math/ranking.py.

Table-driven cases of each index, the exact comparison and the reduction; and a property that
the integer queue (``rank_candidates``: order, reduced indexes, ranking hash) equals the queue the
previous ``fractions.Fraction`` implementation built, kept here as a tiny reference.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import blake3
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearinghouse.spec.math.ranking import (
    Ratio,
    Ratios,
    bitmex_ratio,
    compare,
    descending_order,
    hyperliquid_ratio,
    order_keys,
    reduced,
    reduced_all,
)
from clearinghouse.spec.waterfall.ranking import Candidate, rank_candidates, ranking_hash
from tx.encoding import encode

CROSS = 2**32 - 1


# ------------------------------------------------------------------ the Fraction reference
def ref_hyperliquid(c: Candidate) -> Fraction:
    notional = abs(c.size) * c.mark
    upnl = c.size * c.mark - c.cost
    return Fraction(abs(c.cost) + upnl, abs(c.cost)) * Fraction(notional, c.value)


def ref_bitmex(c: Candidate) -> Fraction:
    notional = abs(c.size) * c.mark
    upnl = c.size * c.mark - c.cost
    pnl_pct = Fraction(upnl, abs(c.cost))
    leverage = (
        Fraction(notional * c.unit_maintenance, c.value * c.maintenance)
        if c.maintenance
        else Fraction(notional, c.value)
    )
    return pnl_pct * leverage if upnl >= 0 else pnl_pct / leverage


REFERENCE = {"hyperliquid": ref_hyperliquid, "bitmex": ref_bitmex}


class _HashRow(msgspec.Struct, array_like=True, frozen=True):
    account: bytes
    unit: int
    size: int
    num: str
    den: str


def ref_queue(cands: list[Candidate], ranking: str) -> tuple[list[tuple[bytes, int, Fraction]], bytes]:
    scored = [(REFERENCE[ranking](c), c) for c in cands if c.value > 0 and c.cost != 0]
    scored.sort(key=lambda ic: (-ic[0], ic[1].account, ic[1].unit))
    rows = [_HashRow(c.account, c.unit, c.size, str(ix.numerator), str(ix.denominator)) for ix, c in scored]
    digest = blake3.blake3(b"clearinghouse/adl-ranking/v1\x00" + encode(rows)).digest()
    return [(c.account, c.unit, ix) for ix, c in scored], digest


# ------------------------------------------------------------------ table-driven cases
@pytest.mark.parametrize(
    ("size", "cost", "mark", "value", "expected"),
    [
        (10, 100_000, 11_000, 20_000, Fraction(121, 20)),  # long winning: (mark/entry) x notional/value
        (10, 100_000, 9_000, 15_000, Fraction(27, 5)),  # long losing
        (-10, -100_000, 9_000, 20_000, Fraction(99, 20)),  # short winning: (2 - mark/entry) x ...
        (-10, -100_000, 11_000, 15_000, Fraction(33, 5)),  # short losing
        (-10, -100_000, 30_000, 15_000, Fraction(-20, 1)),  # short losing more than its cost: negative
        (3, 7, 5, 1, Fraction(225, 7)),  # (7 + 8) x 15 / 7: already in lowest terms
    ],
    ids=["long-win", "long-lose", "short-win", "short-lose", "short-negative", "lowest-terms"],
)
def test_hyperliquid_ratio(size: int, cost: int, mark: int, value: int, expected: Fraction) -> None:
    r = hyperliquid_ratio(size, cost, mark, value)
    assert r.den > 0
    assert Fraction(r.num, r.den) == expected
    assert reduced(r) == Ratio(expected.numerator, expected.denominator)


@pytest.mark.parametrize(
    ("size", "cost", "mark", "value", "mm", "unit_mm", "expected"),
    [
        (10, 100_000, 11_000, 20_000, 0, 0, Fraction(11, 20)),  # PnL% x notional/value
        (10, 100_000, 9_000, 15_000, 0, 0, Fraction(-1, 60)),  # losing: PnL% / leverage
        (-10, -100_000, 9_000, 20_000, 1, 1, Fraction(9, 20)),
        (-10, -100_000, 11_000, 15_000, 1, 1, Fraction(-3, 220)),
        (10, 100_000, 11_000, 20_000, 1_100, 2_200, Fraction(11, 10)),  # leverage spread by maintenance
        (10, 100_000, 10_000, 20_000, 1, 1, Fraction(0)),  # flat PnL: zero, den stays positive
    ],
    ids=["long-win", "long-lose", "short-win", "short-lose", "shared-unit", "flat"],
)
def test_bitmex_ratio(size: int, cost: int, mark: int, value: int, mm: int, unit_mm: int, expected: Fraction) -> None:
    r = bitmex_ratio(size, cost, mark, value, mm, unit_mm)
    assert r.den > 0
    assert Fraction(r.num, r.den) == expected
    assert reduced(r) == Ratio(expected.numerator, expected.denominator)


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (hyperliquid_ratio, (1, 0, 1, 1)),
        (hyperliquid_ratio, (1, 1, 1, 0)),
        (bitmex_ratio, (1, 1, 1, 0, 1, 1)),
        (bitmex_ratio, (1, 10, 1, 1, 1, 0)),  # losing with zero leverage
    ],
    ids=["hl-zero-cost", "hl-zero-value", "bm-zero-value", "bm-zero-leverage"],
)
def test_zero_denominators_raise_like_fraction(call: Callable[..., Ratio], args: tuple[int, ...]) -> None:
    with pytest.raises(ZeroDivisionError):
        call(*args)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (Ratio(1, 2), Ratio(2, 4), 0),
        (Ratio(1, 3), Ratio(1, 2), -1),
        (Ratio(-1, 3), Ratio(-1, 2), 1),
        (Ratio(10**40 + 1, 10**40), Ratio(10**40, 10**40 - 1), -1),  # differ by ~1e-80
    ],
    ids=["equal-unreduced", "less", "greater-negative", "huge-close"],
)
def test_compare_cross_multiplies(a: Ratio, b: Ratio, expected: int) -> None:
    assert compare(a, b) == expected == (Fraction(*a) > Fraction(*b)) - (Fraction(*a) < Fraction(*b))


@pytest.mark.parametrize(
    "ratios",
    [
        [Ratio(1, 2), Ratio(2, 4), Ratio(3, 6)],
        [Ratio(10**40 + 1, 10**40), Ratio(10**40, 10**40 - 1), Ratio(1, 1)],
        [Ratio(-7, 3), Ratio(-5, 2), Ratio(0, 9), Ratio(7, 3)],
        [Ratio(1, 1)],
        [],
    ],
    ids=["all-equal", "huge-close", "negative", "one", "empty"],
)
def test_order_keys_preserve_order_and_equality(ratios: list[Ratio]) -> None:
    keys = order_keys(Ratios([r.num for r in ratios], [r.den for r in ratios]))
    for x, kx in zip(ratios, keys, strict=True):
        for y, ky in zip(ratios, keys, strict=True):
            assert (kx > ky) - (kx < ky) == compare(x, y)


def test_descending_order_breaks_ties_by_the_key_only_within_a_run() -> None:
    ratios = Ratios([1, 2, 3, 1, 2], [2, 4, 1, 3, 4])  # 1/2, 1/2, 3, 1/3, 1/2
    assert descending_order(ratios, lambda i: -i) == [2, 4, 1, 0, 3]
    assert descending_order(ratios, lambda i: i) == [2, 0, 1, 4, 3]
    assert reduced_all(ratios, [2, 4, 1, 0, 3]) == Ratios([3, 1, 1, 1, 1], [1, 2, 2, 2, 3])


# ------------------------------------------------------------------ the property
ACCOUNTS = [bytes(19) + bytes([i]) for i in range(40)]


@st.composite
def candidates(draw: st.DrawFn) -> list[Candidate]:
    mark = draw(st.integers(1, 10**9))
    n = draw(st.integers(0, 30))
    out = []
    for account in draw(st.lists(st.sampled_from(ACCOUNTS), min_size=n, max_size=n, unique=True)):
        size = draw(st.integers(-(10**9), 10**9).filter(bool))
        entry = draw(st.sampled_from([mark, mark + 1, mark - 1, 2 * mark, max(1, mark // 2)]) | st.integers(1, 10**9))
        mm = draw(st.integers(0, 10**6))
        out.append(
            Candidate(
                account=account,
                unit=draw(st.sampled_from([CROSS, 0, 1])),
                size=size,
                cost=draw(st.sampled_from([size * entry, 0]) | st.integers(-(10**12), 10**12)),
                mark=mark,
                value=draw(st.integers(-5, 10**15)),
                maintenance=mm,
                unit_maintenance=mm + draw(st.integers(0, 10**6)),
            )
        )
    # exact ties with another address: copies of earlier entries
    for c in list(out)[: draw(st.integers(0, 3))]:
        free = [a for a in ACCOUNTS if all(a != x.account for x in out)]
        out.append(Candidate(free[0], c.unit, c.size, c.cost, c.mark, c.value, c.maintenance, c.unit_maintenance))
    return out


@settings(max_examples=300)
@given(cands=candidates(), ranking=st.sampled_from(["hyperliquid", "bitmex"]))
def test_integer_queue_equals_the_fraction_queue(cands: list[Candidate], ranking: str) -> None:
    try:
        expected, expected_hash = ref_queue(cands, ranking)
    except ZeroDivisionError:
        with pytest.raises(ZeroDivisionError):
            rank_candidates(cands, ranking)
        return
    q = rank_candidates(cands, ranking)
    assert [(r.candidate.account, r.candidate.unit, Fraction(r.num, r.den)) for r in q] == expected
    assert [(r.num, r.den) for r in q] == [(ix.numerator, ix.denominator) for _a, _u, ix in expected]
    assert [r.rank for r in q] == list(range(1, len(q) + 1))
    assert ranking_hash(q) == expected_hash


@pytest.mark.parametrize(
    "ratios",
    [
        [Ratio(1, 2), Ratio(2, 4), Ratio(1, 3)],
        [Ratio(10**40 + 1, 10**40), Ratio(10**40, 10**40 - 1), Ratio(-1, 10**40)],
        [Ratio(-7, 3), Ratio(-5, 2), Ratio(0, 9), Ratio(7, 3)],
    ],
    ids=["halves-third", "huge-close", "negative"],
)
def test_descending_order_keys_reverse_the_order(ratios: list[Ratio]) -> None:
    keys = order_keys(Ratios([r.num for r in ratios], [r.den for r in ratios]), descending=True)
    for x, kx in zip(ratios, keys, strict=True):
        for y, ky in zip(ratios, keys, strict=True):
            assert (kx < ky) - (kx > ky) == compare(x, y)
