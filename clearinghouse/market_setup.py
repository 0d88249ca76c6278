"""Genesis markets: their static spec and initial prices."""

from __future__ import annotations

from tx.messages import Genesis

from .errors import InvalidBlock
from .keys import market_spec_key, market_state_key
from .records import MarketState


def init_markets(ws, genesis: Genesis) -> None:
    names = [m.name for m in genesis.markets]
    if len(set(names)) != len(names):
        raise InvalidBlock("duplicate market names in genesis")
    for index, spec in enumerate(genesis.markets):
        ws.put(market_spec_key(index), spec)
        px = spec.initial_price
        ws.put(
            market_state_key(index),
            MarketState(
                oracle_price=px, external_price=0, mark_price=px, last_trade_price=0,
                ema150_num=0, ema150_den=0, ema30_num=0, ema30_den=0, ema_time_ms=genesis.time_ms,
                premium_sum_ppm=0, premium_samples=0, last_sample_ms=genesis.time_ms,
                last_funding_ms=genesis.time_ms, open_interest=0,
            ),
        )
