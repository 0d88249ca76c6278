"""Pure funding arithmetic (no state): premium, hourly rate, index step, settlement (protocol §11.5-§11.6).

Rates and premiums are integers in parts per billion (ppb, 10^-9). Funding is
lazy (dYdX's model): each hourly settlement adds ``oracle x rate_ppb`` to the
market's cumulative ``funding_index`` (10^-9 micro-USDC per lot); a position
owes ``size x (funding_index - funding_entry)`` in 10^-9 micro-USDC and pays it
when it is next touched. Every number here is exact; the one rounding is the
settlement's, and it is against the account: the amount is rounded UP (a
payer pays the exact owed amount rounded up, a receiver gets it rounded down),
and the difference (the *dust*, in [0, 10^9) units of 10^-9 micro-USDC) is
accumulated per market and swept to the insurance fund in whole micro-USDC.
"""

from __future__ import annotations

from typing import NamedTuple

from clearinghouse.spec.constants import RATE_SCALE
from clearinghouse.spec.math.integers import ceil_div, div_toward_zero

# RATE_SCALE (spec.constants): rates and premiums are in parts per billion (1 = 10^-9 = 0.0000001%);
# the funding index is in 10^-9 micro-USDC per lot.
INTEREST_8H_PPB = 100_000
"""The interest component: 0.01% per 8 hours."""
PREMIUM_CLAMP_PPB = 500_000
"""F = P + clamp(interest - P, -0.05%, +0.05%)."""
HOURLY_CAP_PPB = 40_000_000
"""The hourly rate is capped at 4% in either direction."""
SAMPLE_CAP_PPB = RATE_SCALE
"""One premium sample is clamped to [-100%, +100%]: beyond that the hourly cap
binds anyway, and it keeps the hour's sum far inside 64 bits."""


def clamp(x: int, lo: int, hi: int) -> int:
    """x limited to [lo, hi] (protocol §11.6)."""
    return max(lo, min(hi, x))


def premium_ppb(oracle: int, impact_bid: int | None, impact_ask: int | None) -> int:
    """(max(impact bid - oracle, 0) - max(oracle - impact ask, 0)) / oracle, in ppb (protocol §11.6).

    A side without enough depth contributes 0. The division truncates toward
    zero (a rate is charged to both sides, so neither is favoured), and the
    sample is clamped to +/-100%.
    """
    up = max(impact_bid - oracle, 0) if impact_bid is not None else 0
    down = max(oracle - impact_ask, 0) if impact_ask is not None else 0
    p = div_toward_zero((up - down) * RATE_SCALE, oracle)  # toward zero
    return clamp(p, -SAMPLE_CAP_PPB, SAMPLE_CAP_PPB)


def average_premium_ppb(premium_sum: int, samples: int) -> int:
    """The hour's average premium, truncated toward zero; 0 if no sample was taken (protocol §11.6)."""
    return div_toward_zero(premium_sum, samples) if samples > 0 else 0


def hourly_rate_ppb(avg_premium: int) -> int:
    """F / 8 with F = P + clamp(0.01% - P, -0.05%, +0.05%), capped at +/-4% per hour (protocol §11.6).

    F / 8 truncates toward zero. Positive: longs pay shorts.
    """
    f = avg_premium + clamp(INTEREST_8H_PPB - avg_premium, -PREMIUM_CLAMP_PPB, PREMIUM_CLAMP_PPB)
    return clamp(div_toward_zero(f, 8), -HOURLY_CAP_PPB, HOURLY_CAP_PPB)  # toward zero


def index_step(oracle: int, rate_ppb: int) -> int:
    """What one hourly settlement adds to the funding index: oracle x rate_ppb (exact) (protocol §11.6).

    In 10^-9 micro-USDC per lot: one lot pays oracle x rate / 10^9 micro-USDC
    for the hour (a negative step: shorts pay longs).
    """
    return oracle * rate_ppb


def owed_e9(size: int, index: int, entry: int) -> int:
    """Exact funding a position owes since its entry snapshot, in 10^-9 micro-USDC (protocol §11.6).

    size x (index - entry); positive = the position pays, negative = it receives.
    """
    return size * (index - entry)


class Settlement(NamedTuple):
    """One position's funding settlement: what moves, and the rounding residue (protocol §11.6)."""

    amount: int
    """micro-USDC out of the position's margin (negative: into it), rounded up."""
    dust_e9: int
    """amount x 10^9 - exact owed, in [0, 10^9): the residue the rounding kept from the account."""


def settlement(size: int, index: int, entry: int) -> Settlement:
    """Settle ``size`` lots from ``entry`` to ``index``: amount = ceil(size x (index - entry) / 10^9) (protocol §11.6).

    Rounded UP, i.e. against the account (a payer pays more, a receiver gets
    less); the difference is returned as ``dust_e9`` so nothing is lost.
    """
    exact = owed_e9(size, index, entry)
    amount = ceil_div(exact, RATE_SCALE)  # up: against the account
    return Settlement(amount=amount, dust_e9=amount * RATE_SCALE - exact)


def unsettled_amount(size: int, index: int, entry: int) -> int:
    """What settling now would move out of the position's margin (micro-USDC, rounded up).

    The value and margin checks count exactly this (protocol §11.6), so
    settling never changes a unit's value.
    """
    return ceil_div(owed_e9(size, index, entry), RATE_SCALE)  # up: against the account


class PoolUpdate(NamedTuple):
    """A market's funding pool after one settlement, and what is swept to the insurance fund (protocol §11.6)."""

    pool: int
    dust_e9: int
    swept: int


def pool_after(pool: int, dust_e9: int, s: Settlement) -> PoolUpdate:
    """Add one settlement to the market's pool; sweep whole micro-USDC of dust to the fund (protocol §11.6).

    pool += amount; dust += s.dust_e9; then floor(dust / 10^9) micro-USDC leave
    the pool for the insurance fund and dust keeps the remainder (in [0, 10^9)).
    pool x 10^9 - dust changes by exactly the exact owed amount, so
    pool x 10^9 - dust + (exact unsettled of every open position) stays 0.
    """
    dust = dust_e9 + s.dust_e9
    swept = dust // RATE_SCALE  # floor: only whole micro-USDC leave
    return PoolUpdate(pool=pool + s.amount - swept, dust_e9=dust - swept * RATE_SCALE, swept=swept)
