"""Pure order validation (protocol §10.1): ticks, lots, notional, price bands.

Prices are integers in units of 10^-(6 - sz_decimals) USDC and sizes integer
lots, so lot rules hold by construction; what remains is the significant-
figure rule, the minimum notional and the bounds that keep every product in
64 bits.
"""

from __future__ import annotations

from clearinghouse.spec.constants import MAX_NOTIONAL, MAX_SIG_FIGS, PRICE_BAND_PCT
from clearinghouse.spec.errors import BelowMinNotional, InvalidPrice, InvalidSize
from tx.messages import MarketSpec


def price_unit_per_usdc(spec: MarketSpec) -> int:
    """How many price units make one USDC: 10^(6 - sz_decimals; protocol §10.1)."""
    units: int = 10 ** (6 - spec.sz_decimals)  # sz_decimals <= 6: an integer power
    return units


def significant_figures(n: int) -> int:
    """Significant figures of a positive integer (trailing zeros do not count; protocol §10.1)."""
    while n % 10 == 0:
        n //= 10
    return len(str(n))


def check_price(spec: MarketSpec, price: int) -> None:
    """A price is valid if it is a whole number of USDC, or has at most 5 significant figures (protocol §10.1).

    Raises:
        InvalidPrice: not positive, or more than five significant figures and not a whole USDC.
    """
    if price <= 0:
        raise InvalidPrice("price must be positive")
    if price % price_unit_per_usdc(spec) == 0:
        return
    if significant_figures(price) > MAX_SIG_FIGS:
        raise InvalidPrice(f"price {price} has more than {MAX_SIG_FIGS} significant figures")


def check_price_band(price: int, mark: int) -> None:
    """Reject limit prices more than 95% away from the mark (fat-finger and overflow guard; protocol §10.1).

    Raises:
        InvalidPrice: more than 95% away from the mark.
    """
    if price * 100 < mark * (100 - PRICE_BAND_PCT) or price * 100 > mark * (100 + PRICE_BAND_PCT):
        raise InvalidPrice(f"price {price} is more than {PRICE_BAND_PCT}% away from the mark {mark}")


def check_size(size: int) -> None:
    """A size is a positive whole number of lots (protocol §10.1).

    Raises:
        InvalidSize: ``size <= 0``.
    """
    if size <= 0:
        raise InvalidSize("size must be a positive number of lots")


def check_notional(spec: MarketSpec, price: int, size: int, *, reduce_only: bool) -> None:
    """Minimum notional (not for reduce-only orders, which may close dust) and the 2^62 bound (protocol §10.1).

    Raises:
        InvalidSize: notional above ``MAX_NOTIONAL``.
        BelowMinNotional: an order that is not reduce-only below the market's minimum notional.
    """
    notional = price * size
    if notional > MAX_NOTIONAL:
        raise InvalidSize(f"order notional {notional} exceeds the limit {MAX_NOTIONAL}")
    if not reduce_only and notional < spec.min_notional:
        raise BelowMinNotional(f"order notional {notional} is below the minimum {spec.min_notional}")


def slippage_limit(mark: int, is_buy: bool, slippage_bps: int) -> int:
    """A market order's limit: mark moved against the taker by ``slippage_bps`` (protocol §10.1).

    Rounded toward the mark (buy: down, sell: up), so the bound is never looser
    than asked.
    """
    if is_buy:
        return mark * (10_000 + slippage_bps) // 10_000
    return max(1, -((-mark * (10_000 - slippage_bps)) // 10_000))
