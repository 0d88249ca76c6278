"""Oracle prices: the OracleUpdate action and the end-of-block ``prices`` step (protocol §9.8, §11.2, §11.3).

Each genesis oracle publisher may submit prices; a publisher's latest
submission for a market is kept in state under ``oracle_sub_key(market,
publisher)`` with the block time it was posted (a later one replaces it). At
end of block the ``prices`` step takes, per market, the publishers whose
latest submission is still *fresh* (posted less than the genesis
``oracle_fresh_ms`` ago). The oracle changes only while more than half of the
publishers are fresh; it is then the lower median over one slot per
publisher, a stale publisher's slot holding the current oracle price (it votes
for no change). So no minority of publishers can move it outside the range of
what the others say, whether or not the others are posting. The external perp
price gets the same treatment (``aggregate``). The step then recomputes the
EMAs and the mark price within the market's band (``mark_price.advance_mark``).
"""

from __future__ import annotations

import msgspec

from clearinghouse.spec.errors import InvalidOracle, Unauthorized
from clearinghouse.spec.events import PricesSet
from clearinghouse.spec.prices.mark_price import PRICE_CAP, MarkInputs, advance_mark, best_bid_ask
from clearinghouse.spec.prices.oracle_quorum import aggregate, fresh_submissions
from clearinghouse.spec.state.access import get_chain, get_market_spec, get_market_state
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import market_state_key, oracle_sub_key
from clearinghouse.spec.state.records import Chain, MarketState, OracleSubmission
from clearinghouse.spec.state.working_state import WorkingState
from tx.actions import OracleUpdate


# ---------------------------------------------------------------- the action
def apply_oracle_update(ctx: TxContext, action: OracleUpdate) -> None:
    """Record a publisher's latest prices, after checking every one of them (protocol §9.8).

    Rejected as a whole (nothing stored) if the signer is not a genesis
    oracle publisher, a market index is unknown, a market appears twice, or
    a price is above ``PRICE_CAP`` (which keeps the integer EMAs in 64 bits).
    Each entry replaces the publisher's previous submission for that market
    and is stamped with the block time (its freshness starts now).

    Raises:
        Unauthorized: the signer is not a genesis oracle publisher.
        InvalidOracle: an unknown or repeated market, or a price above ``PRICE_CAP``.
    """
    if ctx.signer not in ctx.chain.oracle_publishers:
        raise Unauthorized("only a genesis oracle publisher may submit oracle prices")
    seen: set[int] = set()
    for item in action.prices:
        if item.market >= ctx.chain.market_count:
            raise InvalidOracle(f"unknown market {item.market}")
        if item.market in seen:
            raise InvalidOracle(f"market {item.market} appears twice in one oracle update")
        seen.add(item.market)
        if item.oracle_price > PRICE_CAP or item.external_price > PRICE_CAP:
            raise InvalidOracle(f"market {item.market}: price above the cap {PRICE_CAP}")
    for item in action.prices:
        # A later submission (this block or any later one) replaces the earlier: the latest word counts.
        ctx.ws.put(
            oracle_sub_key(item.market, ctx.signer),
            OracleSubmission(oracle_price=item.oracle_price, external_price=item.external_price, time_ms=ctx.time_ms),
        )


# ---------------------------------------------------------------- end of block
def update_market_prices(ws: WorkingState, chain: Chain, market: int, time_ms: int) -> PricesSet | None:
    """One market's prices step; returns the PricesSet event if the oracle or mark changed (protocol §11.3).

    While the oracle holds (no fresh majority) the EMAs and the mark still
    advance (the book may have moved), within the band of the held oracle.
    """
    key = market_state_key(market)
    state = get_market_state(ws, market)
    before = state
    agg = aggregate(
        fresh_submissions(ws, chain, market, time_ms),
        len(chain.oracle_publishers),
        state.oracle_price,
        state.external_price,
    )
    state = msgspec.structs.replace(state, oracle_price=agg.oracle, external_price=agg.external)
    bid, ask = best_bid_ask(ws, market)
    state, inputs = advance_mark(state, time_ms, bid, ask, get_market_spec(ws, market).mark_band_bps)
    ws.put(key, state)
    if state.oracle_price == before.oracle_price and state.mark_price == before.mark_price:
        return None
    return prices_event(market, state, agg.fresh, inputs)


def prices_event(market: int, state: MarketState, publishers: int, inputs: MarkInputs) -> PricesSet:
    """The PricesSet evidence: new prices, the number of fresh publishers and the mark's inputs (0 = absent).

    See protocol §11.3.
    """
    return PricesSet(
        market=market,
        oracle_price=state.oracle_price,
        external_price=state.external_price,
        mark_price=state.mark_price,
        publishers=publishers,
        source_a=inputs.a,
        source_b=inputs.b or 0,
        ema30_b=inputs.ema30_b or 0,
    )


def prices_step(ws: WorkingState, time_ms: int) -> list[PricesSet]:
    """End-of-block step 1: oracle medians, EMAs and mark prices, markets in ascending index (protocol §11.3)."""
    chain: Chain = get_chain(ws)
    events: list[PricesSet] = []
    for market in range(chain.market_count):
        event = update_market_prices(ws, chain, market, time_ms)
        if event is not None:
            events.append(event)
    return events
