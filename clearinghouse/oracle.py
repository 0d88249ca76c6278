"""Oracle prices: the OracleUpdate action and the end-of-block ``prices`` step (RULEBOOK §6).

During a block, each genesis oracle publisher may submit prices; a submission
is stored under ``oracle_sub_key(market, publisher)`` only until the end of
the block (a later submission by the same publisher for the same market in
the same block replaces the earlier one). At end of block the ``prices`` step
takes, per market, the median of that block's submissions as the oracle
price (and the median of the nonzero external prices as the external perp
price), deletes the submissions so they never reach committed state, and
recomputes the EMAs and the mark price (``mark_price.advance_mark``).
See docs/prices-and-funding.md.
"""

from __future__ import annotations

import msgspec

from tx.actions import OracleUpdate

from .context import TxContext
from .errors import InvalidOracle, Unauthorized
from .events import PricesSet
from .keys import CHAIN_KEY, market_state_key, oracle_sub_key
from .mark_price import PRICE_CAP, MarkInputs, advance_mark, best_bid_ask, lower_median
from .records import Chain, MarketState, OracleSubmission
from .working_state import WorkingState


# ---------------------------------------------------------------- the action
def apply_oracle_update(ctx: TxContext, action: OracleUpdate) -> None:
    """Store a publisher's prices for this block, after checking every one of them.

    Rejected as a whole (nothing stored) if the signer is not a genesis
    oracle publisher, a market index is unknown, a market appears twice, or
    a price is above ``PRICE_CAP`` (which keeps the integer EMAs in 64 bits).
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
        # A second submission in the same block overwrites the first: the latest word counts.
        ctx.ws.put(oracle_sub_key(item.market, ctx.signer), OracleSubmission(oracle_price=item.oracle_price, external_price=item.external_price))




# ---------------------------------------------------------------- end of block
def take_submissions(ws: WorkingState, chain: Chain, market: int) -> list[OracleSubmission]:
    """This block's submissions for ``market``, in publisher order, deleted from state.

    Deleting them here means they never persist: a key created and deleted in
    the same block is no state change at all. Cost: one lookup per publisher
    (at most 16, fixed in genesis).
    """
    subs: list[OracleSubmission] = []
    for publisher in sorted(chain.oracle_publishers):
        key = oracle_sub_key(market, publisher)
        sub = ws.get(key)
        if sub is not None:
            subs.append(sub)
            ws.delete(key)
    return subs


def aggregate(subs: list[OracleSubmission]) -> tuple[int, int]:
    """(oracle, external) from a non-empty list of submissions.

    oracle = lower median of the oracle prices; external = lower median of
    the nonzero external prices, or 0 if nobody supplied one. For an even
    count the lower middle value is taken (integers, no averaging).
    """
    oracle = lower_median([s.oracle_price for s in subs])
    externals = [s.external_price for s in subs if s.external_price > 0]
    return oracle, (lower_median(externals) if externals else 0)


def update_market_prices(ws: WorkingState, chain: Chain, market: int, time_ms: int) -> PricesSet | None:
    """One market's prices step; returns the PricesSet event if the oracle or mark changed.

    Without submissions the oracle and external prices keep their last
    values, but the EMAs and the mark still advance (the book may have moved).
    """
    key = market_state_key(market)
    state: MarketState = ws.get(key)
    subs = take_submissions(ws, chain, market)
    before = state
    if subs:
        oracle, external = aggregate(subs)
        state = msgspec.structs.replace(state, oracle_price=oracle, external_price=external)
    bid, ask = best_bid_ask(ws, market)
    state, inputs = advance_mark(state, time_ms, bid, ask)
    ws.put(key, state)
    if state.oracle_price == before.oracle_price and state.mark_price == before.mark_price:
        return None
    return prices_event(market, state, len(subs), inputs)


def prices_event(market: int, state: MarketState, publishers: int, inputs: MarkInputs) -> PricesSet:
    """The PricesSet evidence: new prices and the mark's inputs (0 = absent)."""
    return PricesSet(
        market=market, oracle_price=state.oracle_price, external_price=state.external_price,
        mark_price=state.mark_price, publishers=publishers, source_a=inputs.a,
        source_b=inputs.b or 0, ema30_b=inputs.ema30_b or 0,
    )


def prices_step(ws: WorkingState, time_ms: int) -> list[PricesSet]:
    """End-of-block step 1: oracle medians, EMAs and mark prices, markets in ascending index."""
    chain: Chain = ws.get(CHAIN_KEY)
    events: list[PricesSet] = []
    for market in range(chain.market_count):
        event = update_market_prices(ws, chain, market, time_ms)
        if event is not None:
            events.append(event)
    return events


