"""The pure funding arithmetic of spec/math/funding.py (protocol §11.5-§11.6), table-driven.

Each row's expected value is worked out in its id or comment; rates and
premiums are parts per billion, the index and dust are 10^-9 micro-USDC.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearinghouse.spec.math import funding as fm
from clearinghouse.spec.math.integers import div_toward_zero

IB, IA = 90_072_518, 90_200_000


@pytest.mark.parametrize(
    "a, b, q",
    [(7, 2, 3), (-7, 2, -3), (0, 5, 0), (-1, 10**9, 0), (6, 3, 2), (-6, 3, -2)],
    ids=["pos", "neg-toward-zero", "zero", "tiny-neg", "exact", "exact-neg"],
)
def test_div_toward_zero(a, b, q):
    assert div_toward_zero(a, b) == q


@pytest.mark.parametrize(
    "oracle, bid, ask, p",
    [
        (90_000_000, IB, IA, 805_755),  # 72_518e9 / 9e7 = 805_755.5 -> 805_755
        (90_100_000, IB, IA, 0),  # oracle inside [impact bid, impact ask]
        (89_900_000, IB, IA, 1_918_998),  # 172_518e9 / 89_900_000 = 1_918_998.9
        (90_300_000, IB, IA, -1_107_419),  # -100_000e9 / 90_300_000 = -1_107_419.7 -> toward zero
        (90_000_000, None, None, 0),  # no depth on either side
        (90_000_000, None, 89_999_999, -11),  # -1e9 / 9e7 = -11.1 -> -11
        (1, 10**12, None, fm.SAMPLE_CAP_PPB),  # clamped to +100%
        (10**12, None, 1, -999_999_999),  # -(10^12 - 1) x 10^9 / 10^12: never below -100%
    ],
    ids=["above", "inside", "above-2", "below", "no-depth", "ask-only", "cap-up", "deep-discount"],
)
def test_premium_ppb(oracle, bid, ask, p):
    assert fm.premium_ppb(oracle, bid, ask) == p


@pytest.mark.parametrize(
    "total, samples, avg",
    [(4_086_820, 4, 1_021_705), (-7, 2, -3), (0, 0, 0), (5, 0, 0)],
    ids=["exact", "neg-toward-zero", "no-samples", "no-samples-nonzero-sum"],
)
def test_average_premium(total, samples, avg):
    assert fm.average_premium_ppb(total, samples) == avg


@pytest.mark.parametrize(
    "avg, rate",
    [
        (0, 12_500),  # F = 0 + clamp(100_000) = 0.01% / 8h -> 0.00125% / h
        (300_000, 12_500),  # |I - P| <= 0.05%: F = I
        (1_021_705, 65_213),  # F = 521_705; / 8 = 65_213.1 -> 65_213
        (-2_000_000, -187_500),  # F = -1_500_000; / 8
        (-1_000_003, -62_500),  # F = -500_003; / 8 = -62_500.4 -> toward zero
        (10**9, 40_000_000),  # capped at 4% per hour
        (-(10**9), -40_000_000),
    ],
    ids=["interest-only", "inside-clamp", "positive", "negative", "neg-toward-zero", "cap-up", "cap-down"],
)
def test_hourly_rate(avg, rate):
    assert fm.hourly_rate_ppb(avg) == rate


@pytest.mark.parametrize(
    "oracle, rate, step",
    [
        (90_000_007, 65_213, 5_869_170_456_491),
        (32_000_000, 12_500, 400_000_000_000),
        (90_000_000, -187_500, -16_875_000_000_000),
    ],
    ids=["btc", "eth-interest", "negative"],
)
def test_index_step(oracle, rate, step):
    assert fm.index_step(oracle, rate) == step


S = 5_869_170_456_491  # one hour at oracle 90_000_007 and 65_213 ppb


@pytest.mark.parametrize(
    "size, index, entry, amount, dust",
    [
        (100, S, 0, 586_918, 954_350_900),  # 586_917.0456491 -> payer pays 586_918
        (-60, S, 0, -352_150, 227_389_460),  # -352_150.22738946 -> receiver gets 352_150
        (-40, S, 0, -234_766, 818_259_640),  # isolated short in test_funding
        (-60, -S, 0, 352_151, 772_610_540),  # negative index: shorts pay, rounded up
        (100, 2 * S, S, 586_918, 954_350_900),  # only the index since entry counts
        (5, S, S, 0, 0),  # nothing since entry
        (-1, 1, 0, 0, 1),  # receiver of 10^-9: rounds to nothing, all dust
        (1, 1, 0, 1, 999_999_999),  # payer of 10^-9: pays one micro-USDC
        (100, 112_500 * 10**7, 0, 112_500, 0),  # exact
    ],
    ids=[
        "long-pays",
        "short-receives",
        "iso-short",
        "short-pays",
        "since-entry",
        "no-change",
        "tiny-receiver",
        "tiny-payer",
        "exact",
    ],
)
def test_settlement(size, index, entry, amount, dust):
    s = fm.settlement(size, index, entry)
    assert s == fm.Settlement(amount=amount, dust_e9=dust)
    assert fm.unsettled_amount(size, index, entry) == amount  # value counts exactly what settling moves


@pytest.mark.parametrize(
    "pool, dust, amount, sdust, after",
    [
        (0, 0, 586_918, 954_350_900, fm.PoolUpdate(586_918, 954_350_900, 0)),
        (586_918, 954_350_900, -352_150, 227_389_460, fm.PoolUpdate(234_767, 181_740_360, 1)),  # 1.18e9 dust: 1 swept
        (234_767, 181_740_360, -234_766, 818_259_640, fm.PoolUpdate(0, 0, 1)),  # exactly 10^9: swept, pool empty
        (-5, 0, -3, 0, fm.PoolUpdate(-8, 0, 0)),  # receivers first: the pool may run below zero
    ],
    ids=["payer-first", "sweep-one", "sweep-to-empty", "pool-negative"],
)
def test_pool_after(pool, dust, amount, sdust, after):
    assert fm.pool_after(pool, dust, fm.Settlement(amount, sdust)) == after


@given(
    sizes=st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=8),
    steps=st.lists(st.integers(-(4 * 10**16), 4 * 10**16), min_size=1, max_size=5),
)
def test_settling_in_any_order_is_zero_sum(sizes, steps):
    """Balanced positions (one extra counter-position) settle one by one after each step; the pool
    and dust always account for the unsettled remainder exactly, and once all are settled the pool is
    empty but for the dust (pool x 10^9 - dust = 0 exactly, so pool = dust = 0)."""
    sizes = [*sizes, -sum(sizes)]
    entries = [0] * len(sizes)
    index = pool = dust = swept = 0
    for k, step in enumerate(steps):
        index += step
        for i in range(k % len(sizes), len(sizes), 2):  # settle some positions now, the rest later
            upd = fm.pool_after(pool, dust, fm.settlement(sizes[i], index, entries[i]))
            pool, dust, swept = upd.pool, upd.dust_e9, swept + upd.swept
            entries[i] = index
        owed = sum(z * (index - e) for z, e in zip(sizes, entries))
        assert pool * fm.RATE_SCALE - dust + owed == 0
        assert 0 <= dust < fm.RATE_SCALE
    for i in range(len(sizes)):
        upd = fm.pool_after(pool, dust, fm.settlement(sizes[i], index, entries[i]))
        pool, dust, swept = upd.pool, upd.dust_e9, swept + upd.swept
    assert (pool, dust) == (0, 0)
    assert swept >= 0
