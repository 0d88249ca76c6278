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

The closing side only closes: ``size`` may not exceed the position it holds on
the side it closes, so a transfer never opens or flips the closing account's
position. The counterparty's position may grow or flip (the insurance fund
taking a position over); ADL's own caps keep a winner from doing so.
"""

from __future__ import annotations

from clearinghouse.spec.events import PositionTransfer
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import position_key
from clearinghouse.spec.trading.positions import check_open_interest, settle_fill
from tx.messages import MarketSpec

TRANSFER_REASONS = ("backstop", "adl", "deficit_cover")
"""Why a position moved; the ``reason`` field of ``PositionTransfer`` (protocol §10.9):
``backstop`` (protocol §12.6), ``adl`` (rounds 1 and 2, protocol §12.7), ``deficit_cover``
(policy ``seed``, protocol §12.9)."""


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
    """Close ``size`` lots of ``closing``'s position at ``price``: ``closing`` buys them
    (``closing_is_buy``, closing a short) or sells them (closing a long) and ``counterparty`` takes
    the opposite side; emit and return the ``PositionTransfer`` (protocol §10.9).

    No order id, no fee, no last-trade price. Both sides settle as in ``settle_fill`` with a zero
    fee, the closing side first; open interest is checked once after both.

    Raises:
        InvalidAmount: a side's cash, size, cost, isolated cash or realized PnL would leave its
            64-bit range (protocol §2.3).
        LimitExceeded: the market's open interest would exceed its bound.
        ValueError: ``reason`` is not one of ``TRANSFER_REASONS``, ``size`` is not positive, the
            two sides are one account, or ``closing`` does not hold ``size`` lots on the side it
            closes (a caller bug, never reachable from a transaction).
    """
    if reason not in TRANSFER_REASONS:
        raise ValueError(f"unknown transfer reason {reason!r}")
    if size <= 0:
        raise ValueError("a transfer moves a positive number of lots")
    if closing == counterparty:
        raise ValueError("a transfer needs two accounts")
    pos = ctx.ws.get(position_key(market, closing))
    held = 0 if pos is None else (-pos.size if closing_is_buy else pos.size)
    if size > held:
        raise ValueError(f"the closing side holds {max(held, 0)} lots to close, not {size}")
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
