"""Mark price and the integer EMAs behind it (protocol §11.3, §11.4).

The mark price is the median of up to three sources:

(a) oracle + EMA150(book mid - oracle)   (a 150 s EMA of the book's basis);
(b) median(best bid, best ask, last trade) of this market's book;
(c) the external perp price, when the oracle publishers supply one.

With exactly two of them, the 30 s EMA of (b) is added as a third value.
Every median of an even count takes the *lower* middle value: no averaging,
so no rounding. The EMAs are Hyperliquid's numerator/denominator form
(``num <- num*decay + sample*dt``, ``den <- den*decay + dt``), stored as
value = num/den (in 10^-6 units) and weight = den (ms), with the decay
``exp(-dt/tau)`` taken as an exact integer: floor(10^9 * exp(-dt/tau)),
computed with rigorous rational bounds so every implementation gets the same
integer. All of it is pure integer arithmetic over block time.

The band (protocol §11.3, not in Hyperliquid): what the book contributes (the
mid behind the basis EMA, source (b) and so the EMA30 samples), the EMA
values read back ((a) and the EMA30 of (b)) and the mark itself are clamped
into ``[lo, hi]`` around the current oracle, the half-width being the market's
genesis ``mark_band_bps``. A trade in a thin book can move the mark at most to
the band's edge, however far from the oracle it prints.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

import msgspec

from clearinghouse.spec.state.keys import book_side_prefix
from clearinghouse.spec.state.records import MarketState
from clearinghouse.spec.state.working_state import WorkingState

PRICE_CAP = 10**12
"""Largest price the price logic handles (price units). Oracle prices above it
are rejected; book prices entering the mark are clamped to [1, PRICE_CAP].
It bounds every stored EMA value by PRICE_CAP * 10^6 = 10^18 < 2^63 (see ``ema_update``)."""

DECAY_SCALE = 10**9
"""The decay factor is an integer in units of 10^-9."""

EMA150_TAU_MS = 150_000
"""Time constant of the basis EMA behind source (a)."""
EMA30_TAU_MS = 30_000
"""Time constant of the EMA of source (b) used when only two sources exist."""

EMA_VALUE_SCALE = 10**6
"""EMA values are stored in units of 10^-6 (of a price unit), so rounding them is negligible."""

MAX_WEIGHT_TAUS = 21
"""A sample's weight is min(dt, 21 tau). For dt >= 21 tau the decay is exactly 0
(10^9 * exp(-21) < 1), so the EMA equals the new sample whatever its weight;
the cap only keeps the stored weight (<= 22 tau) small after a long halt."""


# ---------------------------------------------------------------- integer EMA
@lru_cache(maxsize=1024)
def decay_factor(dt_ms: int, tau_ms: int) -> int:
    """floor(10^9 * exp(-dt/tau)) exactly, for dt >= 0 and tau > 0 (protocol §11.4).

    Why exact: every replica must derive the same integer, in any language.
    exp(-x) is irrational for rational x != 0 (Lindemann), so its floor is
    well defined, and it is found without floating point: the alternating
    Taylor series sum_k (-x)^k / k! brackets exp(-x) between consecutive
    partial sums once its terms decrease (k > x); we add terms, in exact
    fractions, until both brackets have the same floor. The function is pure,
    so caching it cannot change a result.
    """
    if dt_ms <= 0:
        return DECAY_SCALE
    if dt_ms >= MAX_WEIGHT_TAUS * tau_ms:
        return 0  # 10^9 * exp(-21) = 0.758... < 1, so the floor is exactly 0.
    x = Fraction(dt_ms, tau_ms)
    partial = Fraction(1)  # S_0
    term = Fraction(1)
    k = 0
    while True:
        k += 1
        term = -term * x / k  # (-x)^k / k!
        nxt = partial + term  # S_k
        # exp(-x) lies strictly between S_{k-1} and S_k once the terms shrink (k > x).
        if k > x:
            low, high = min(partial, nxt) * DECAY_SCALE, max(partial, nxt) * DECAY_SCALE
            lo = low.numerator // low.denominator  # exact floor of a Fraction
            hi = high.numerator // high.denominator
            if lo == hi:
                return lo
        partial = nxt


class Ema(NamedTuple):
    """A stored EMA: its value in units of 10^-6 and its weight in ms (protocol §11.4)."""

    value_e6: int
    weight: int


def ema_update(value_e6: int, weight: int, sample: int | None, dt_ms: int, tau_ms: int) -> Ema:
    """Advance an EMA by ``dt_ms`` of block time and add ``sample`` (None: decay only; protocol §11.4).

    Hyperliquid's form is num <- num*decay + sample*dt, den <- den*decay + dt,
    EMA = num/den. We store the same thing as (value, weight) = (num/den, den):
    the value in units of 10^-6 (``value_e6``) and the weight in ms. With
    D = decay_factor(dt, tau), the exact old weight W*D (in 10^-9 ms) and the
    sample's weight w = min(dt, 21 tau):

        value_e6' = floor((value_e6 * W*D + sample * 10^6 * w * 10^9) / (W*D + w * 10^9))
        weight'   = floor(W*D / 10^9) + w

    Only the new value is rounded (down, toward minus infinity: the EMA is a
    reference charged to nobody, the direction just has to be fixed), and the
    old weight enters that division exactly, so rounding the stored weight
    never biases the value. Without a sample (or with dt = 0) the value is
    unchanged and only the weight decays; when it floors to 0 the EMA has no
    value any more (stored as 0, 0), so a stale EMA fades out. Bounds:
    |value_e6| <= PRICE_CAP * 10^6 = 10^18 and weight <= 22 tau: 64 bits.
    """
    decay = decay_factor(dt_ms, tau_ms)
    old = weight * decay  # exact, units of 10^-9 ms
    if sample is None or dt_ms <= 0:
        new_weight = old // DECAY_SCALE  # floor
        return Ema(value_e6, new_weight) if new_weight > 0 else Ema(0, 0)
    w = min(dt_ms, MAX_WEIGHT_TAUS * tau_ms)
    total = old + w * DECAY_SCALE
    value_e6 = (value_e6 * old + sample * EMA_VALUE_SCALE * w * DECAY_SCALE) // total  # floor
    return Ema(value_e6, old // DECAY_SCALE + w)  # weight: floor


def ema_value(value_e6: int, weight: int) -> int | None:
    """The EMA in whole units, floor(value_e6 / 10^6) (toward minus infinity), or None without weight.

    See protocol §11.4.
    """
    if weight <= 0:
        return None
    return value_e6 // EMA_VALUE_SCALE  # floor


# ---------------------------------------------------------------- medians and sources
def lower_median(values: list[int]) -> int:
    """The median; for an even count the lower of the two middle values (no averaging; protocol §11.4)."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


BAND_SCALE = 10_000
"""``mark_band_bps`` is in basis points of the oracle price."""


class Band(NamedTuple):
    """The price band ``[low, high]`` around the oracle that every mark input is forced into (protocol §11.3)."""

    low: int
    high: int


def mark_band(oracle: int, band_bps: int) -> Band:
    """``[lo, hi]`` = oracle x (1 -/+ band_bps / 10^4), each rounded toward the oracle (the band is never
    wider than stated): lo = ceil, hi = floor, hi capped at PRICE_CAP. With band_bps <= 900 and
    oracle >= 1, 1 <= lo <= oracle <= hi.

    See protocol §11.4.
    """
    lo = -((-oracle * (BAND_SCALE - band_bps)) // BAND_SCALE)  # ceil
    hi = oracle * (BAND_SCALE + band_bps) // BAND_SCALE  # floor
    return Band(max(1, lo), min(PRICE_CAP, hi))


def clamp_band(px: int, band: Band) -> int:
    """``px`` forced into the band ``[low, high]`` (protocol §11.3)."""
    return max(band.low, min(band.high, px))


def clamp_price(px: int) -> int:
    """A price forced into [1, PRICE_CAP] before it enters an EMA or a median (protocol §11.4)."""
    return max(1, min(PRICE_CAP, px))


class BestBidAsk(NamedTuple):
    """The best resting bid and ask prices of a market; None for an empty side (protocol §11.3)."""

    bid: int | None
    ask: int | None


def best_bid_ask(ws: WorkingState, market: int) -> BestBidAsk:
    """The best resting bid and ask prices (None for an empty side), from the book index (protocol §11.4)."""
    out: list[int | None] = []
    for is_buy in (True, False):
        key = ws.index.first(book_side_prefix(market, is_buy))
        out.append(None if key is None else ws.get(key).price)
    return BestBidAsk(out[0], out[1])


def book_source(bid: int | None, ask: int | None, last: int) -> int | None:
    """Source (b): lower median of whichever of best bid, best ask, last trade exist (last 0 = none).

    See protocol §11.4.
    """
    present = [clamp_price(p) for p in (bid, ask) if p is not None]
    if last > 0:
        present.append(clamp_price(last))
    return lower_median(present) if present else None


def book_mid(bid: int | None, ask: int | None) -> int | None:
    """floor((bid + ask) / 2), only when both sides rest; the basis EMA's sample is mid - oracle (protocol §11.4)."""
    if bid is None or ask is None:
        return None
    return (clamp_price(bid) + clamp_price(ask)) // 2  # floor


def mark_from_sources(a: int, b: int | None, c: int | None, ema30_b: int | None) -> int:
    """The median of the sources present; with exactly two, the EMA30 of (b) joins them (protocol §11.4).

    (a) always exists (the basis EMA term is 0 until it has weight). With
    two sources and no EMA30 value the lower of the two is taken (even-count
    rule). The result is clamped to [1, PRICE_CAP]: the mark must be positive.
    """
    values = [a] + [v for v in (b, c) if v is not None]
    if len(values) == 2 and ema30_b is not None:
        values.append(ema30_b)
    return clamp_price(lower_median(values))


class MarkInputs(NamedTuple):
    """The sources behind one mark (for the PricesSet evidence): None = absent (protocol §11.4)."""

    a: int
    b: int | None
    c: int | None
    ema30_b: int | None


class MarkAdvance(NamedTuple):
    """What ``advance_mark`` returns: the market state with its new EMAs and mark, and the sources used.

    See protocol §11.4.
    """

    state: MarketState
    inputs: MarkInputs


def advance_mark(state: MarketState, time_ms: int, bid: int | None, ask: int | None, band_bps: int) -> MarkAdvance:
    """Update both EMAs to ``time_ms`` and recompute the mark (oracle/external already current).

    Order (protocol §11.3): dt = time - ema_time; band = ``mark_band(oracle,
    band_bps)``; EMA150 takes the sample band(mid) - oracle (if the book has
    both sides); source (b) is band(median of bid, ask, last) and EMA30 takes
    it (if it exists); then (a) = band(oracle + EMA150 value, 0 without
    weight), the EMA30 value is read back through the band, (c) is the
    external price, and the mark is band(median of the sources). Returns the
    new state and the inputs used (after the band).
    """
    dt = time_ms - state.ema_time_ms
    oracle = state.oracle_price
    band = mark_band(oracle, band_bps)
    mid = book_mid(bid, ask)
    basis_sample = None if mid is None else clamp_band(mid, band) - oracle
    v150, w150 = ema_update(state.ema150_e6, state.ema150_weight, basis_sample, dt, EMA150_TAU_MS)
    b = book_source(bid, ask, state.last_trade_price)
    if b is not None:
        b = clamp_band(b, band)
    v30, w30 = ema_update(state.ema30_e6, state.ema30_weight, b, dt, EMA30_TAU_MS)
    basis = ema_value(v150, w150)
    a = clamp_band(oracle + (basis if basis is not None else 0), band)
    ema30_b = ema_value(v30, w30)
    c = state.external_price if state.external_price > 0 else None
    inputs = MarkInputs(a=a, b=b, c=c, ema30_b=None if ema30_b is None else clamp_band(ema30_b, band))
    mark = clamp_band(mark_from_sources(inputs.a, inputs.b, inputs.c, inputs.ema30_b), band)
    new_state = msgspec.structs.replace(
        state,
        ema150_e6=v150,
        ema150_weight=w150,
        ema30_e6=v30,
        ema30_weight=w30,
        ema_time_ms=time_ms,
        mark_price=mark,
    )
    return MarkAdvance(new_state, inputs)
