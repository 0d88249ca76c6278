"""Position transfer: the administered move the waterfall uses (protocol §10.9).

The backstop hands a unit's positions to the insurance fund, ADL closes an
underwater position against a ranked winner, and the seed policy's deficit
cover closes a winner's slice against the fund. None of these is a trade:
no order exists, no order id is spent, no fee is charged, the price is set by
the rule (mark, bankruptcy or reference price) rather than found in the book,
and the market's last-trade price (mark source b) does not move. Both sides
settle exactly as one side of a fill does (``positions.settle_fill``: same
cash, cost, realized-PnL and isolated-bucket rules), open interest is checked
once after both sides, and one ``PositionTransfer`` event records the move.
"""

from __future__ import annotations

from clearinghouse.spec.events import PositionTransfer
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.trading.positions import check_open_interest, settle_fill
from tx.messages import MarketSpec

TRANSFER_REASONS = ("backstop", "adl", "deficit_cover")
"""Why a position moved; the ``reason`` field of ``PositionTransfer``."""


def transfer_position(
    ctx: TxContext,
    market: int,
    spec: MarketSpec,
    closing: bytes,
    counterparty: bytes,
    closing_is_buy: bool,
    size: int,
    price: int,
    reason: str,
) -> PositionTransfer:
    """Move ``size`` lots at ``price``: ``closing`` buys (``closing_is_buy``) or sells them and
    ``counterparty`` takes the opposite side; emit and return the ``PositionTransfer`` (protocol §10.9).

    Raises:
        InvalidAmount: a side's cash, size, cost, isolated cash or realized PnL would leave its
            64-bit range (protocol §2.3).
        LimitExceeded: the market's open interest would exceed its bound.
        ValueError: ``reason`` is not one of ``TRANSFER_REASONS`` or ``size`` is not positive
            (a caller bug, never reachable from a transaction).
    """
    if reason not in TRANSFER_REASONS:
        raise ValueError(f"unknown transfer reason {reason!r}")
    if size <= 0:
        raise ValueError("a transfer moves a positive number of lots")
    signed = size if closing_is_buy else -size
    closing_pnl = settle_fill(ctx.ws, market, spec, closing, signed, price, 0, ctx.emit)
    counterparty_pnl = settle_fill(ctx.ws, market, spec, counterparty, -signed, price, 0, ctx.emit)
    check_open_interest(ctx.ws, market)
    event = PositionTransfer(
        market=market,
        reason=reason,
        closing=closing,
        counterparty=counterparty,
        closing_is_buy=closing_is_buy,
        size=size,
        price=price,
        closing_realized_pnl=closing_pnl,
        counterparty_realized_pnl=counterparty_pnl,
    )
    ctx.emit(event)
    return event
