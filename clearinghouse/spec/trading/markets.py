"""Genesis markets: their static spec, initial prices and the price parameters (protocol §5)."""

from __future__ import annotations

from clearinghouse.spec.errors import InvalidGenesis
from clearinghouse.spec.prices.mark_price import PRICE_CAP
from clearinghouse.spec.state.keys import market_spec_key, market_state_key
from clearinghouse.spec.state.records import MarketState
from clearinghouse.spec.state.working_state import WorkingState
from tx.messages import (
    MAX_MARK_BAND_BPS,
    MAX_ORACLE_FRESH_MS,
    MIN_MARK_BAND_BPS,
    MIN_ORACLE_FRESH_MS,
    Genesis,
)


def initial_market_state(initial_price: int, genesis_time_ms: int) -> MarketState:
    """A market's state at genesis: oracle = mark = the spec's initial price (protocol §5).

    EMAs start empty (weight 0: no value until the first sample), and the
    EMA clock, the premium sampling clock and the funding hour all start at the
    genesis time, so funding hours fall on genesis time + k hours.
    """
    return MarketState(
        oracle_price=initial_price,
        external_price=0,
        mark_price=initial_price,
        last_trade_price=0,
        ema150_e6=0,
        ema150_weight=0,
        ema30_e6=0,
        ema30_weight=0,
        ema_time_ms=genesis_time_ms,
        premium_sum_ppb=0,
        premium_samples=0,
        last_sample_ms=genesis_time_ms,
        last_funding_ms=genesis_time_ms,
        funding_rate_ppb=0,
        open_interest=0,
        funding_index=0,
        funding_pool=0,
        funding_dust_e9=0,
    )


def validate_genesis_markets(genesis: Genesis) -> None:
    """The market and price-parameter rules of protocol §5, checked before genesis writes anything.

    Distinct market names; every ``initial_price <= PRICE_CAP`` (prices above
    the cap would let the integer EMAs overflow their 64-bit slots); every
    ``mark_band_bps`` in ``[MIN_MARK_BAND_BPS, MAX_MARK_BAND_BPS]`` and
    ``oracle_fresh_ms`` in ``[MIN_ORACLE_FRESH_MS, MAX_ORACLE_FRESH_MS]``.
    The wire types carry the same bounds, so a decoded genesis already meets
    them; a genesis built in code is checked here. Raises ``InvalidGenesis``.

    Raises:
        InvalidGenesis: an oracle freshness window, market name, initial price or mark band out of bounds.
    """
    if not MIN_ORACLE_FRESH_MS <= genesis.oracle_fresh_ms <= MAX_ORACLE_FRESH_MS:
        raise InvalidGenesis(
            f"oracle_fresh_ms {genesis.oracle_fresh_ms} outside [{MIN_ORACLE_FRESH_MS}, {MAX_ORACLE_FRESH_MS}]"
        )
    names = [m.name for m in genesis.markets]
    if len(set(names)) != len(names):
        raise InvalidGenesis("duplicate market names in genesis")
    for spec in genesis.markets:
        if spec.initial_price > PRICE_CAP:
            raise InvalidGenesis(f"market {spec.name}: initial price above the price cap {PRICE_CAP}")
        if not MIN_MARK_BAND_BPS <= spec.mark_band_bps <= MAX_MARK_BAND_BPS:
            raise InvalidGenesis(
                f"market {spec.name}: mark_band_bps {spec.mark_band_bps} "
                f"outside [{MIN_MARK_BAND_BPS}, {MAX_MARK_BAND_BPS}]"
            )


def init_markets(ws: WorkingState, genesis: Genesis) -> None:
    """Write every genesis market's spec and initial state (market index = list position; protocol §5)."""
    validate_genesis_markets(genesis)
    for index, spec in enumerate(genesis.markets):
        ws.put(market_spec_key(index), spec)
        ws.put(market_state_key(index), initial_market_state(spec.initial_price, genesis.time_ms))
