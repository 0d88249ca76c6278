"""Backstop liquidation (protocol §12.6): the insurance fund takes over a unit at mark.

When, after the market liquidation, a unit is still below maintenance and
either below 2/3 of it or the book could not absorb the liquidation order,
the fund takes every position of the unit at the mark price (fills of kind
``backstop``, no fees) and the unit's remaining margin (its value at mark,
which may be negative: the fund then absorbs the loss). Cross: all cross
positions and cross cash; isolated: that position and its bucket. The trader
ends with zero in that unit; maintenance margin is not returned.
"""

from __future__ import annotations

from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import INSURANCE_FUND, market_spec_key
from clearinghouse.spec.trading.book import next_oid
from clearinghouse.spec.trading.matching import Taker, execute_fill
from clearinghouse.spec.waterfall.events import CROSS, Backstop
from clearinghouse.spec.waterfall.insurance_fund import fund_value, sweep_to_fund
from clearinghouse.spec.waterfall.units import Unit, unit_health


def backstop_unit(ctx: TxContext, unit: Unit, reason: str) -> None:
    """Step 4: the insurance fund takes over every position of ``unit`` at mark, with its margin (protocol §12.6)."""
    ws = ctx.ws
    health = unit_health(ws, unit)
    before = fund_value(ws)
    for market, pos, mark, _mm in health.positions:
        spec = ws.get(market_spec_key(market))
        taker = Taker(
            owner=unit.account,
            oid=next_oid(ws),
            is_buy=pos.size < 0,
            limit_price=mark,
            remaining=abs(pos.size),
            reduce_only=True,
            kind="backstop",
        )
        execute_fill(ctx, market, spec, taker, INSURANCE_FUND, 0, mark, abs(pos.size), maker_fee_ppm=0, taker_fee_ppm=0)
    # Closing at mark leaves exactly the unit's value in its bucket: cross cash, or for an
    # isolated unit its bucket, which settle_fill already moved to cross cash unless negative.
    source = unit if (not unit.is_cross and health.value < 0) else Unit(unit.account, CROSS)
    sweep_to_fund(ws, source, health.value)
    ctx.emit(
        Backstop(
            account=unit.account,
            unit=unit.market,
            reason=reason,
            value=health.value,
            maintenance_margin=health.maintenance,
            positions=health.snapshots(),
            margin_taken=health.value,
            fund_before=before,
            fund_after=fund_value(ws),
        )
    )
