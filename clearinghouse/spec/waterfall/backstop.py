"""Backstop liquidation (protocol §12.6): the insurance fund takes over a unit at mark.

When, after the market liquidation, a unit is still below maintenance and
either below 2/3 of it or the book could not absorb the liquidation order,
the fund takes every position of the unit at the mark price (position
transfers of reason ``backstop``, protocol §10.9: no order, no order id, no
fee) and the unit's remaining margin (its value at mark, which may be
negative: the fund then absorbs the loss). Cross: all cross positions and
cross cash; isolated: that position and its bucket. The trader ends with zero
in that unit; maintenance margin is not returned.
"""

from __future__ import annotations

from clearinghouse.spec.constants import CROSS
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import INSURANCE_FUND, market_spec_key
from clearinghouse.spec.trading.transfer import transfer_position
from clearinghouse.spec.waterfall.events import Backstop
from clearinghouse.spec.waterfall.insurance_fund import fund_value, sweep_to_fund
from clearinghouse.spec.waterfall.units import Unit, unit_health


def backstop_unit(ctx: TxContext, unit: Unit, reason: str) -> None:
    """The insurance fund takes ``unit`` over at the mark, for ``reason`` (``below_two_thirds`` or
    ``book_could_not_absorb``); emits one ``PositionTransfer`` per position, then ``Backstop``
    (protocol §12.6).

    Raises:
        InvalidAmount: a side of a transfer, or the fund's cash, would leave its 64-bit range
            (protocol §2.3; the liquidation step undoes the unit, ``WaterfallSkipped``).
        LimitExceeded: never in practice (a transfer cannot raise open interest), from the
            open-interest check of ``transfer_position``.
    """
    ws = ctx.ws
    health = unit_health(ws, unit)
    before = fund_value(ws)
    for market, pos, mark, _mm in health.positions:
        spec = ws.get(market_spec_key(market))
        transfer_position(
            ctx, market, spec, unit.account, INSURANCE_FUND, pos.size < 0, abs(pos.size), mark, "backstop"
        )
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
