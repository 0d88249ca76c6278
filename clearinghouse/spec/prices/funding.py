"""Funding: premium sampling from impact prices, and hourly settlement (protocol §11.5-§11.6).

The end-of-block ``funding`` step (after prices and triggers, before
liquidations) does, for each market in ascending index:

1. settlement, if the block time has reached the end of the funding hour
   (``last_funding_ms + 1 h``): the hourly rate comes from the hour's average
   premium, every open position pays or receives size x oracle x rate, and
   the accumulators restart;
2. a premium sample, if at least 5 s of block time passed since the last one
   and the oracle is live (a fresh majority of publishers, protocol §11.2):
   while the oracle holds, no premium is measured against it.

Rates and premiums are integers in parts per billion (ppb, 10^-9). Payments
round against the account: a payer's amount rounds up, a receiver's down,
and the difference (never negative while open interest balances) goes to the
insurance fund, so funding is exactly zero-sum. See docs/prices-and-funding.md.
"""

from __future__ import annotations

from typing import Any

import msgspec

from clearinghouse.spec.events import FundingPaid, FundingSettled
from clearinghouse.spec.math.margin import ceil_div
from clearinghouse.spec.prices.oracle_quorum import oracle_is_live
from clearinghouse.spec.state.accounts import add_cash, checked_i64
from clearinghouse.spec.state.keys import (
    CHAIN_KEY,
    INSURANCE_FUND,
    book_side_prefix,
    market_spec_key,
    market_state_key,
    position_prefix,
)
from clearinghouse.spec.state.records import Chain, MarketState, Position
from clearinghouse.spec.state.working_state import WorkingState, atomically
from clearinghouse.spec.waterfall.events import WaterfallSkipped

RATE_SCALE = 10**9
"""Rates and premiums are in parts per billion: 1 = 10^-9 = 0.0000001%."""
SAMPLE_INTERVAL_MS = 5_000
"""A premium sample is taken at most every 5 s of block time."""
FUNDING_INTERVAL_MS = 3_600_000
"""Funding settles once an hour of block time."""
INTEREST_8H_PPB = 100_000
"""The interest component: 0.01% per 8 hours."""
PREMIUM_CLAMP_PPB = 500_000
"""F = P + clamp(interest - P, -0.05%, +0.05%)."""
HOURLY_CAP_PPB = 40_000_000
"""The hourly rate is capped at 4% in either direction."""
SAMPLE_CAP_PPB = RATE_SCALE
"""One premium sample is clamped to [-100%, +100%]: beyond that the hourly cap
binds anyway, and it keeps the hour's sum far inside 64 bits."""


# ---------------------------------------------------------------- integer helpers
def div_toward_zero(a: int, b: int) -> int:
    """a / b truncated toward zero (b > 0): rates round toward zero, favouring neither side (protocol §11.6)."""
    q = abs(a) // b
    return q if a >= 0 else -q


def clamp(x: int, lo: int, hi: int) -> int:
    """``x`` forced into ``[lo, hi]`` (protocol §11.6)."""
    return max(lo, min(hi, x))


# ---------------------------------------------------------------- impact prices and premium
def impact_price(ws: WorkingState, market: int, bids: bool, impact_notional: int) -> int | None:
    """Average fill price of a market order of ``impact_notional`` micro-USDC into one book side (protocol §11.6).

    ``bids=True`` walks the bids (impact bid: selling into them), else the
    asks (impact ask). Orders are taken in price-time priority until the
    notional is reached; the last order fills partly, r micro-USDC at price p,
    i.e. r/p lots (a fraction is fine: this is a reference, not a fill). With
    L whole lots taken before it:

        average = N / (L + r/p) = N * p / (L * p + r)

    rounded down for the impact bid and up for the impact ask (the
    conservative side of each, shrinking the premium). None if the side's
    whole depth is below N (that side's premium term is then 0). Only the
    orders needed to reach N are read.
    """
    filled = 0
    lots = 0
    for key in ws.index.walk(book_side_prefix(market, bids)):
        order = ws.get(key)
        level = order.price * order.size
        if filled + level >= impact_notional:
            rest = impact_notional - filled  # > 0, since filled < N
            num = impact_notional * order.price
            den = lots * order.price + rest
            return num // den if bids else ceil_div(num, den)  # bid: floor, ask: ceil
        filled += level
        lots += order.size
    return None


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


def sample_premium(ws: WorkingState, market: int, state: MarketState, time_ms: int) -> MarketState:
    """Add one premium sample (at the current oracle price) to the hour's accumulators (protocol §11.6)."""
    spec = ws.get(market_spec_key(market))
    bid = impact_price(ws, market, True, spec.impact_notional)
    ask = impact_price(ws, market, False, spec.impact_notional)
    p = premium_ppb(state.oracle_price, bid, ask)
    return msgspec.structs.replace(
        state,
        premium_sum_ppb=state.premium_sum_ppb + p,
        premium_samples=state.premium_samples + 1,
        last_sample_ms=time_ms,
    )


# ---------------------------------------------------------------- the rate
def average_premium_ppb(premium_sum: int, samples: int) -> int:
    """The hour's average premium, truncated toward zero; 0 if no sample was taken (protocol §11.6)."""
    return div_toward_zero(premium_sum, samples) if samples > 0 else 0


def hourly_rate_ppb(avg_premium: int) -> int:
    """F / 8 with F = P + clamp(0.01% - P, -0.05%, +0.05%), capped at +/-4% per hour (protocol §11.6).

    F / 8 truncates toward zero. Positive: longs pay shorts.
    """
    f = avg_premium + clamp(INTEREST_8H_PPB - avg_premium, -PREMIUM_CLAMP_PPB, PREMIUM_CLAMP_PPB)
    return clamp(div_toward_zero(f, 8), -HOURLY_CAP_PPB, HOURLY_CAP_PPB)  # toward zero


def funding_amount(size: int, oracle: int, rate_ppb: int) -> int:
    """What one position pays (positive) or receives (negative): size x oracle x rate (protocol §11.6).

    size x oracle is exact micro-USDC; the product with the rate is divided by
    10^9 rounding UP (toward plus infinity): a payer pays the exact amount
    rounded up, a receiver gets the exact amount rounded down.
    """
    return ceil_div(size * oracle * rate_ppb, RATE_SCALE)  # up: against the account


# ---------------------------------------------------------------- settlement
def pay_position(ws: WorkingState, key: bytes, owner: bytes, pos: Position, amount: int) -> None:
    """Move ``amount`` out of the position's margin: cross from the account's cash, isolated from iso_cash.

    See protocol §11.6.
    """
    if amount == 0:
        return
    if pos.is_cross:
        add_cash(ws, owner, -amount)
    else:
        ws.put(key, msgspec.structs.replace(pos, iso_cash=checked_i64(pos.iso_cash - amount, "isolated margin")))


def settle_market(ws: WorkingState, market: int, state: MarketState, hours: int) -> tuple[MarketState, list[Any]]:
    """Pay one hour of funding on every open position of ``market`` (ascending address; protocol §11.6).

    Returns the market state with the accumulators reset, and the events:
    one FundingPaid per open position, then one FundingSettled. The residue
    (paid - received, >= 0 when long and short sizes balance) goes to the
    insurance fund's cash, so the cash moved sums to exactly zero.
    """
    avg = average_premium_ppb(state.premium_sum_ppb, state.premium_samples)
    rate = hourly_rate_ppb(avg)
    oracle = state.oracle_price
    prefix = position_prefix(market)
    events: list[Any] = []
    paid = received = 0
    for key in ws.index.iter_prefix(prefix):
        pos: Position = ws.get(key)
        if pos.size == 0:
            continue
        owner = key[len(prefix) :]
        amount = funding_amount(pos.size, oracle, rate)
        pay_position(ws, key, owner, pos, amount)
        if amount > 0:
            paid += amount
        else:
            received -= amount
        events.append(FundingPaid(market=market, account=owner, size=pos.size, is_cross=pos.is_cross, amount=amount))
    residue = paid - received
    if residue != 0:
        add_cash(ws, INSURANCE_FUND, residue)
    events.append(
        FundingSettled(
            market=market,
            hours=hours,
            samples=state.premium_samples,
            avg_premium_ppb=avg,
            rate_ppb=rate,
            oracle_price=oracle,
            total_paid=paid,
            total_received=received,
            residue=residue,
        )
    )
    new_state = msgspec.structs.replace(
        state,
        premium_sum_ppb=0,
        premium_samples=0,
        funding_rate_ppb=rate,
        last_funding_ms=state.last_funding_ms + hours * FUNDING_INTERVAL_MS,
    )
    return new_state, events


def funding_market(ws: WorkingState, market: int, time_ms: int) -> list[Any]:
    """One market's funding step: settle if an hour ended, then sample if 5 s passed (protocol §11.5).

    Settlement comes first because a sample taken at or after the hour's end
    belongs to the next hour. If the block crossed several hour boundaries
    (a halt), funding is paid once, for one hour, and the funding clock jumps
    to the last boundary crossed: halted time is not charged. While the
    oracle is held (no fresh majority of publishers) no sample is taken, and
    ``last_sample_ms`` stays, so the first live block samples at once: a
    premium against a price no majority vouches for would charge one side for
    the oracle's silence. Settlement still happens on time, from the samples
    the hour has (none: the interest-only rate), at the held oracle.
    """
    key = market_state_key(market)
    state: MarketState = ws.get(key)
    before = state
    events: list[Any] = []
    elapsed = time_ms - state.last_funding_ms
    if elapsed >= FUNDING_INTERVAL_MS:
        state, events = settle_market(ws, market, state, elapsed // FUNDING_INTERVAL_MS)
    if time_ms - state.last_sample_ms >= SAMPLE_INTERVAL_MS and oracle_is_live(ws, ws.get(CHAIN_KEY), market, time_ms):
        state = sample_premium(ws, market, state, time_ms)
    if state != before:
        ws.put(key, state)
    return events


def funding_step(ws: WorkingState, time_ms: int) -> list[Any]:
    """End-of-block step 3: funding for every market in ascending index (protocol §11.6)."""
    chain: Chain = ws.get(CHAIN_KEY)
    events: list[Any] = []
    for market in range(chain.market_count):
        error = atomically(ws, events, lambda: events.extend(funding_market(ws, market, time_ms)))
        if error is not None:
            # A payment past a 64-bit bound: this market's funding waits (accumulators kept),
            # the block and every other market go on.
            events.append(
                WaterfallSkipped(account=bytes(20), unit=market, step="funding", code=error.code, message=error.message)
            )
    return events
