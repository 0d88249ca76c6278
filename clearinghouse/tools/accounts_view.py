"""An account as a trader sees it: entry price, unrealized PnL, liquidation price, margin, withdrawable.

Computed from committed state for display and exports only (never fed back into the
transition). Units: sizes in lots, prices in price units (micro-USDC per lot, so
size x price is micro-USDC), money in micro-USDC; derived prices (entry, liquidation)
are exact fractions, formatted by the caller.

Liquidation price: the mark of this position's market at which its margin unit
(the isolated position, or the whole cross account with every other mark held
where it is) reaches maintenance margin:

* isolated: ``iso_cash + s*P = |s|*P/(2*L)``;
* cross: ``A + s*P = |s|*P/(2*L)`` with ``A`` = cash + the other cross positions'
  value - their maintenance margin;

where ``L`` is the market's max leverage (maintenance = notional / 2L). ``None``
when no positive price solves it (the unit cannot be liquidated by this price alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from clearinghouse.spec.math.margin import (
    initial_margin,
    maintenance_margin,
    notional,
    withdrawal_floor,
)
from clearinghouse.spec.state.keys import (
    CHAIN_KEY,
    account_key,
    market_spec_key,
    market_state_key,
    position_key,
)
from clearinghouse.spec.trading.positions import unsettled_funding
from clearinghouse.tools.units import (
    format_scaled,
    lots_to_size,
    micro_to_usdc,
    price_decimals,
)


@dataclass
class MarketRef:
    index: int
    name: str
    sz_decimals: int
    max_leverage: int


@dataclass
class PositionView:
    market: MarketRef
    size: int
    cost: int
    mark: int
    leverage: int
    is_cross: bool
    iso_cash: int
    entry_px: Fraction | None
    position_value: int
    unrealized_pnl: int
    margin_used: int
    maintenance: int
    liquidation_px: Fraction | None
    return_on_equity: Fraction | None
    adl: dict[str, Any] | None = None
    unsettled_funding: int = 0
    """Funding accrued since the position last changed size and not yet paid (protocol §11.6;
    micro-USDC, rounded up as settlement will round it; positive: the position owes it)."""


@dataclass
class AccountView:
    address: bytes
    exists: bool
    cash: int = 0
    open_orders: int = 0
    cross_value: int = 0
    cross_notional: int = 0
    cross_initial: int = 0
    cross_maintenance: int = 0
    isolated_value: int = 0
    isolated_notional: int = 0
    isolated_margin: int = 0
    withdrawable: int = 0
    positions: list[PositionView] = field(default_factory=list)

    @property
    def account_value(self) -> int:
        return self.cross_value + self.isolated_value

    @property
    def total_notional(self) -> int:
        return self.cross_notional + self.isolated_notional

    @property
    def margin_used(self) -> int:
        return self.cross_initial + self.isolated_margin


def markets(view: Any) -> list[MarketRef]:
    chain = view.get(CHAIN_KEY)
    out = []
    for i in range(chain.market_count if chain is not None else 0):
        spec = view.get(market_spec_key(i))
        out.append(MarketRef(index=i, name=spec.name, sz_decimals=spec.sz_decimals, max_leverage=spec.max_leverage))
    return out


def account_view(view: Any, addr: bytes, *, with_adl: bool = True) -> AccountView:
    """The account's numbers at the current marks."""
    acct = view.get(account_key(addr))
    if acct is None:
        return AccountView(address=addr, exists=False)
    refs = markets(view)
    av = AccountView(address=addr, exists=True, cash=acct.cash, open_orders=acct.open_orders)
    raw: list[tuple[MarketRef, Any, int, int]] = []
    for m in acct.open_markets:
        pos = view.get(position_key(m, addr))
        if pos is None or pos.size == 0:
            continue
        state = view.get(market_state_key(m))
        # Unsettled funding (protocol §11.6) counts in value exactly as the spec counts it.
        raw.append((refs[m], pos, state.mark_price, unsettled_funding(pos, state)))
    # Cross totals first (each cross position's liquidation price needs the others).
    cross_value = acct.cash
    for ref, pos, mark, funding in raw:
        if pos.is_cross:
            cross_value += pos.size * mark - funding
            av.cross_notional += notional(pos.size, mark)
            av.cross_initial += initial_margin(pos.size, mark, pos.leverage)
            av.cross_maintenance += maintenance_margin(pos.size, mark, ref.max_leverage)
    av.cross_value = cross_value
    for ref, pos, mark, funding in raw:
        mm = maintenance_margin(pos.size, mark, ref.max_leverage)
        pnl = pos.size * mark - pos.cost
        if pos.is_cross:
            used = initial_margin(pos.size, mark, pos.leverage)
            rest = cross_value - (pos.size * mark - funding) - (av.cross_maintenance - mm)
            liq = _liquidation_price(rest, pos.size, ref.max_leverage)
        else:
            used = pos.iso_cash + pos.size * mark - funding
            av.isolated_value += used
            av.isolated_notional += notional(pos.size, mark)
            av.isolated_margin += used
            liq = _liquidation_price(pos.iso_cash - funding, pos.size, ref.max_leverage)
        entry = Fraction(pos.cost, pos.size)
        entry_margin = Fraction(abs(pos.cost), pos.leverage) if pos.leverage else None
        roe = Fraction(pnl) / entry_margin if entry_margin else None
        pv = PositionView(
            market=ref,
            size=pos.size,
            cost=pos.cost,
            mark=mark,
            leverage=pos.leverage,
            is_cross=pos.is_cross,
            iso_cash=pos.iso_cash,
            entry_px=entry,
            position_value=notional(pos.size, mark),
            unrealized_pnl=pnl,
            margin_used=used,
            maintenance=mm,
            liquidation_px=liq,
            return_on_equity=roe,
            unsettled_funding=funding,
        )
        if with_adl:
            from clearinghouse.spec.waterfall.adl import adl_indicator

            pv.adl = adl_indicator(view, ref.index, addr)
        av.positions.append(pv)
    av.withdrawable = max(0, cross_value - withdrawal_floor(av.cross_notional, av.cross_initial))
    return av


def _liquidation_price(rest: int, size: int, max_leverage: int) -> Fraction | None:
    """The price P with rest + size*P = |size|*P/(2L), if positive."""
    den = Fraction(size) - Fraction(abs(size), 2 * max_leverage)
    if den == 0:
        return None
    p = Fraction(-rest) / den
    return p if p > 0 else None


# ---------------------------------------------------------------- formatting
def frac_str(f: Fraction | None, decimals: int, *, grouping: bool = False) -> str | None:
    """A fraction rounded half-up to ``decimals`` places as a decimal string (display only)."""
    if f is None:
        return None
    scaled = f * 10**decimals
    q, r = divmod(abs(scaled.numerator), scaled.denominator)
    if 2 * r >= scaled.denominator:
        q += 1
    return format_scaled(-q if f < 0 else q, decimals, grouping=grouping)


def px_str(units: int | Fraction | None, sz_decimals: int, *, extra: int = 0, grouping: bool = False) -> str | None:
    """Price units -> USDC decimal string (``extra`` more decimals for averages)."""
    if units is None:
        return None
    if isinstance(units, int):
        return format_scaled(units, price_decimals(sz_decimals), grouping=grouping)
    pd = price_decimals(sz_decimals)
    return frac_str(units / 10**pd, pd + extra, grouping=grouping)


def usdc_str(micro: int, *, grouping: bool = False) -> str:
    return micro_to_usdc(micro, grouping=grouping)


def base_str(lots: int, sz_decimals: int, *, grouping: bool = False) -> str:
    return lots_to_size(lots, sz_decimals, grouping=grouping)
