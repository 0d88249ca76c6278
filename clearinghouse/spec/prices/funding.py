"""Funding: premium sampling from impact prices, and the hourly index step (protocol §11.5-§11.6).

The end-of-block ``funding`` step (after prices and triggers, before
liquidations) does, for each market in ascending index:

1. the hourly step, if the block time has reached the end of the funding hour
   (``last_funding_ms + 1 h``): the hourly rate comes from the hour's average
   premium, ``oracle x rate`` is added to the market's cumulative
   ``funding_index``, and the accumulators restart. No position is visited:
   each pays or receives its share when next touched (lazy funding,
   ``trading.positions.settle_funding``), and until then value and margin count
   it as unsettled (``trading.positions.unsettled_funding``);
2. a premium sample, if at least 5 s of block time passed since the last one
   and the oracle is live (a fresh majority of publishers, protocol §11.2):
   while the oracle holds, no premium is measured against it.

The pure arithmetic (premium, rate, index step, settlement rounding) is
``spec.math.funding``. See docs/prices-and-funding.md.
"""

from __future__ import annotations

import msgspec

from clearinghouse.spec.events import BaseEvent, FundingSettled
from clearinghouse.spec.math.funding import average_premium_ppb, hourly_rate_ppb, index_step, premium_ppb
from clearinghouse.spec.math.integers import ceil_div
from clearinghouse.spec.prices.oracle_quorum import oracle_is_live
from clearinghouse.spec.state.accounts import checked_i64
from clearinghouse.spec.state.keys import CHAIN_KEY, book_side_prefix, market_spec_key, market_state_key
from clearinghouse.spec.state.records import Chain, MarketState
from clearinghouse.spec.state.working_state import WorkingState, atomically
from clearinghouse.spec.waterfall.events import WaterfallSkipped

SAMPLE_INTERVAL_MS = 5_000
"""A premium sample is taken at most every 5 s of block time."""
FUNDING_INTERVAL_MS = 3_600_000
"""Funding settles once an hour of block time."""


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


# ---------------------------------------------------------------- the hourly step
def settle_market(ws: WorkingState, market: int, state: MarketState, hours: int) -> tuple[MarketState, FundingSettled]:
    """One hour of funding for ``market``: rate from the hour's premiums, index += oracle x rate.

    O(1): no position is read or written (protocol §11.6). Returns the market
    state with the accumulators reset and the index advanced, and the
    ``FundingSettled`` event.

    Raises:
        InvalidAmount: the index would leave its 64-bit range (the caller skips this market's funding).
    """
    avg = average_premium_ppb(state.premium_sum_ppb, state.premium_samples)
    rate = hourly_rate_ppb(avg)
    oracle = state.oracle_price
    step = index_step(oracle, rate)
    index = checked_i64(state.funding_index + step, "funding index")
    event = FundingSettled(
        market=market,
        hours=hours,
        samples=state.premium_samples,
        avg_premium_ppb=avg,
        rate_ppb=rate,
        oracle_price=oracle,
        index_step=step,
        funding_index=index,
        open_interest=state.open_interest,
    )
    new_state = msgspec.structs.replace(
        state,
        premium_sum_ppb=0,
        premium_samples=0,
        funding_rate_ppb=rate,
        funding_index=index,
        last_funding_ms=state.last_funding_ms + hours * FUNDING_INTERVAL_MS,
    )
    return new_state, event


def funding_market(ws: WorkingState, market: int, time_ms: int) -> list[BaseEvent]:
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
    events: list[BaseEvent] = []
    elapsed = time_ms - state.last_funding_ms
    if elapsed >= FUNDING_INTERVAL_MS:
        state, settled = settle_market(ws, market, state, elapsed // FUNDING_INTERVAL_MS)
        events.append(settled)
    if time_ms - state.last_sample_ms >= SAMPLE_INTERVAL_MS and oracle_is_live(ws, ws.get(CHAIN_KEY), market, time_ms):
        state = sample_premium(ws, market, state, time_ms)
    if state != before:
        ws.put(key, state)
    return events


def funding_step(ws: WorkingState, time_ms: int) -> list[BaseEvent]:
    """End-of-block step 3: funding for every market in ascending index (protocol §11.6)."""
    chain: Chain = ws.get(CHAIN_KEY)
    events: list[BaseEvent] = []
    for market in range(chain.market_count):
        error = atomically(ws, events, lambda: events.extend(funding_market(ws, market, time_ms)))
        if error is not None:
            # An index past its 64-bit bound: this market's funding waits (accumulators kept),
            # the block and every other market go on.
            events.append(
                WaterfallSkipped(account=bytes(20), unit=market, step="funding", code=error.code, message=error.message)
            )
    return events
