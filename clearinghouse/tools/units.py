"""Human decimal strings <-> the integer units of the state (display and compile time only).

The transition never sees a decimal: it works in micro-USDC, lots and price
units (protocol §2.1). Scenario files, the CLI's output and ``explain`` speak
in human units ("90000.5" USDC, "0.30" BTC), and this module converts
between the two, *exactly*:

* parsing uses ``decimal.Decimal`` (or ``int``) and rejects any value that is
  not a whole number of the target unit ("0.0005" BTC with 0.001 lots is an
  error, never rounded);
* formatting is integer arithmetic and always exact; trailing zeros are
  dropped ("88200" rather than "88200.000").

Units for a market with ``sz_decimals`` = d:

* size: one lot is 10^-d of the base asset;
* price: one price unit is 10^-(6 - d) USDC;
* USDC amounts: one micro-USDC is 10^-6 USDC;
* fees: basis points in the scenario, parts per million in ``MarketSpec``
  (1 bp = 100 ppm).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

USDC_DECIMALS = 6
PPM_PER_BPS = 100

_DECIMAL_RE = re.compile(r"^[+-]?\d(?:_?\d)*(?:\.\d(?:_?\d)*)?$")
"""A plain decimal: optional sign, digits (single underscores allowed between digits), optional fraction."""


class UnitError(ValueError):
    """A value that is not a number, or not a whole number of the target unit."""


def _describe(value: Any) -> str:
    return repr(value) if not isinstance(value, Decimal) else repr(str(value))


def to_decimal(value: Any, what: str = "value") -> Decimal:
    """Parse a human number: a decimal string, an ``int`` or a ``Decimal`` (never a float or bool).

    Strings are plain decimals ("90000.5", "-12", "1_000"); exponents, NaN,
    infinities and surrounding spaces are rejected. Floats are rejected
    because they are not exact; read TOML with ``parse_float=Decimal`` to get
    unquoted decimals exactly.
    """
    if isinstance(value, bool):
        raise UnitError(f"{what} must be a number, got {str(value).lower()}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise UnitError(f"{what} must be a finite number, got {value}")
        return value
    if isinstance(value, float):
        raise UnitError(f"{what}: {value!r} is a binary float; write it as a decimal string")
    if isinstance(value, str):
        text = value.strip()
        if text != value or not _DECIMAL_RE.match(text):
            raise UnitError(f'{what} must be a decimal number like "90000.5", got {value!r}')
        try:
            return Decimal(text.replace("_", ""))
        except InvalidOperation:  # pragma: no cover - the regex already guarantees a valid literal
            raise UnitError(f"{what} must be a decimal number, got {value!r}") from None
    raise UnitError(f"{what} must be a number or a decimal string, got {type(value).__name__}")


def to_scaled(value: Any, decimals: int, what: str = "value", *, unit: str = "") -> int:
    """``value`` x 10^decimals as an exact integer; ``UnitError`` if it has more decimals than that."""
    d = to_decimal(value, what)
    # Exact, whatever the decimal context's precision: sign x digits x 10^exponent.
    sign, digits, exponent = d.as_tuple()
    if not isinstance(exponent, int):  # NaN or infinity
        raise UnitError(f"{what} {_describe(value)} is not a number")
    mantissa = int("".join(map(str, digits)) or "0")
    shift = exponent + decimals
    if shift >= 0:
        scaled = mantissa * 10**shift
    else:
        scaled, rest = divmod(mantissa, 10 ** (-shift))
        if rest:
            step = format_scaled(1, decimals)
            unit_text = f" {unit}" if unit else ""
            raise UnitError(
                f"{what} {_describe(value)} is not a whole multiple of {step}{unit_text} (at most {decimals} decimals)"
            )
    return -scaled if sign else scaled


def format_scaled(n: int, decimals: int, *, grouping: bool = False) -> str:
    """The integer ``n`` divided by 10^decimals as an exact decimal string, trailing zeros dropped."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"expected an int, got {type(n).__name__}")
    sign = "-" if n < 0 else ""
    whole, frac = divmod(abs(n), 10**decimals) if decimals > 0 else (abs(n) * 10 ** (-decimals), 0)
    whole_text = f"{whole:,}" if grouping else str(whole)
    if decimals > 0 and frac:
        return f"{sign}{whole_text}.{frac:0{decimals}d}".rstrip("0")
    return f"{sign}{whole_text}"


# ---------------------------------------------------------------- USDC amounts
def usdc_to_micro(value: Any, what: str = "amount") -> int:
    """ "1234.5" USDC -> 1_234_500_000 micro-USDC (exact; at most 6 decimals)."""
    return to_scaled(value, USDC_DECIMALS, what, unit="USDC")


def micro_to_usdc(micro: int, *, grouping: bool = False) -> str:
    """1_234_500_000 micro-USDC -> "1234.5"."""
    return format_scaled(micro, USDC_DECIMALS, grouping=grouping)


# ---------------------------------------------------------------- market units
def price_decimals(sz_decimals: int) -> int:
    """Decimals of a price unit: a price unit is 10^-(6 - sz_decimals) USDC."""
    return USDC_DECIMALS - sz_decimals


def price_to_units(value: Any, sz_decimals: int, what: str = "price") -> int:
    """ "90000.5" USDC -> price units of a market with ``sz_decimals`` (exact)."""
    return to_scaled(value, price_decimals(sz_decimals), what, unit="USDC")


def units_to_price(units: int, sz_decimals: int, *, grouping: bool = False) -> str:
    """Price units -> USDC decimal string."""
    return format_scaled(units, price_decimals(sz_decimals), grouping=grouping)


def size_to_lots(value: Any, sz_decimals: int, what: str = "size", *, asset: str = "") -> int:
    """ "0.30" BTC -> lots of 10^-sz_decimals (exact)."""
    return to_scaled(value, sz_decimals, what, unit=asset)


def lots_to_size(lots: int, sz_decimals: int, *, grouping: bool = False) -> str:
    """Lots -> base-asset decimal string."""
    return format_scaled(lots, sz_decimals, grouping=grouping)


# ---------------------------------------------------------------- fees
def bps_to_ppm(value: Any, what: str = "fee") -> int:
    """ "4.5" basis points -> 450 parts per million (exact; at most 2 decimals)."""
    return to_scaled(value, 2, what, unit="bps")


def ppm_to_bps(ppm: int) -> str:
    return format_scaled(ppm, 2)


# ---------------------------------------------------------------- ratios (display only)
def fraction_to_decimal(num: int, den: int, digits: int = 8) -> str:
    """An approximate decimal of num/den with ``digits`` significant digits (display only, never compared)."""
    if den == 0:
        return "undefined"
    f = Fraction(num, den)
    if f == 0:
        return "0"
    sign = "-" if f < 0 else ""
    f = abs(f)
    # Find the exponent e with 10^e <= f < 10^(e+1), exactly.
    e = len(str(f.numerator // f.denominator)) - 1 if f >= 1 else -1
    if f < 1:
        while f * Fraction(10) ** (-e) < 1:
            e -= 1
    scale = digits - 1 - e
    scaled = f * Fraction(10) ** scale
    q, r = divmod(scaled.numerator, scaled.denominator)
    if 2 * r >= scaled.denominator:  # round half up: display only
        q += 1
    text = format_scaled(q, scale) if scale >= 0 else str(q * 10 ** (-scale))
    return sign + text


# ---------------------------------------------------------------- event fields by unit (display)
PRICE_FIELDS = frozenset(
    {
        "price",
        "oracle_price",
        "mark_price",
        "external_price",
        "source_a",
        "source_b",
        "ema30_b",
        "limit_price",
        "bankruptcy_price",
        "reference_price",
        "mark",
        "trigger_price",
        "last_trade_price",
        "entry_price",
    }
)
SIZE_FIELDS = frozenset(
    {
        "size",
        "ordered",
        "filled",
        "remaining",
        "underwater_size",
        "remaining_after",
        "unmatched",
        "open_interest",
        "orig_size",
    }
)
USDC_FIELDS = frozenset(
    {
        "amount",
        "taker_fee",
        "maker_fee",
        "taker_realized_pnl",
        "maker_realized_pnl",
        "closing_realized_pnl",
        "counterparty_realized_pnl",
        "realized_pnl",
        "value",
        "maintenance_margin",
        "deficit",
        "paid",
        "fund_before",
        "fund_after",
        "margin_taken",
        "covered",
        "deficit_remaining",
        "cost",
        "iso_cash",
        "delta",
        "swept",
        "funding_pool",
        "cash",
    }
)
MARKET_FIELDS = frozenset({"market", "unit", "counterparty_unit", "underwater_unit"})
"""Market indexes; ``unit`` fields may be ``CROSS`` (the whole cross account)."""


def exact_or_approx(f: Fraction, max_decimals: int = 12) -> str:
    """A fraction as an exact decimal if it terminates within ``max_decimals``, else '≈' 10 digits."""
    for d in range(max_decimals + 1):
        scaled = f * 10**d
        if scaled.denominator == 1:
            return micro_to_usdc(0) if scaled == 0 else _group(str_decimal(scaled.numerator, d))
    return "≈" + fraction_to_decimal(f.numerator, f.denominator, 10)


def str_decimal(n: int, decimals: int) -> str:
    return format_scaled(n, decimals)


def _group(text: str) -> str:
    sign = "-" if text.startswith("-") else ""
    body = text.lstrip("-")
    whole, _, frac = body.partition(".")
    whole = f"{int(whole):,}"
    return sign + whole + (f".{frac}" if frac else "")
