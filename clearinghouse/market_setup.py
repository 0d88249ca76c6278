"""Genesis markets: their static spec and initial prices."""

from __future__ import annotations

from tx.messages import Genesis

from .errors import InvalidBlock
from .keys import market_spec_key, market_state_key
from .mark_price import PRICE_CAP
from .records import MarketState


def initial_market_state(initial_price: int, genesis_time_ms: int) -> MarketState:
    """A market's state at genesis: oracle = mark = the spec's initial price.

    EMAs start empty (weight 0: no value until the first sample), and the
    EMA clock, the premium sampling clock and the funding hour all start at the
    genesis time, so funding hours fall on genesis time + k hours.
    """
    return MarketState(
        oracle_price=initial_price, external_price=0, mark_price=initial_price, last_trade_price=0,
        ema150_e6=0, ema150_weight=0, ema30_e6=0, ema30_weight=0, ema_time_ms=genesis_time_ms,
        premium_sum_ppb=0, premium_samples=0, last_sample_ms=genesis_time_ms,
        last_funding_ms=genesis_time_ms, funding_rate_ppb=0, open_interest=0,
    )


def init_markets(ws, genesis: Genesis) -> None:
    """Write every genesis market's spec and initial state (market index = list position)."""
    names = [m.name for m in genesis.markets]
    if len(set(names)) != len(names):
        raise InvalidBlock("duplicate market names in genesis")
    for index, spec in enumerate(genesis.markets):
        # Prices above the cap would let the integer EMAs overflow their 64-bit slots.
        if spec.initial_price > PRICE_CAP:
            raise InvalidBlock(f"market {spec.name}: initial price above the price cap {PRICE_CAP}")
        ws.put(market_spec_key(index), spec)
        ws.put(market_state_key(index), initial_market_state(spec.initial_price, genesis.time_ms))
