"""The checks of an ``expect`` step: account, position, entry, price and event expectations, each
evaluated against a running scenario."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from tx.signing import checksum_address

if TYPE_CHECKING:  # for annotations only: run.py drives these checks
    from clearinghouse.tools.scenario.run import ScenarioRun

from clearinghouse.tools.scenario.model import Check, MarketDef, Scenario, _Addr
from clearinghouse.tools.units import (
    UnitError,
    micro_to_usdc,
    price_to_units,
    size_to_lots,
    usdc_to_micro,
)


# ---------------------------------------------------------------- expectations
@dataclass
class AccountCheck(Check):
    name: str
    addr: bytes
    what: str  # cash | value | open_orders
    expected: int

    def describe(self) -> str:
        if self.what == "open_orders":
            return f"{self.name} has {self.expected} open orders"
        return f"{self.name} {self.what} = {micro_to_usdc(self.expected)} USDC"

    def evaluate(self, run: ScenarioRun) -> str | None:
        st = account_state(run.view(), self.addr, run.scenario)
        actual = st[self.what]
        if actual == self.expected:
            return None
        if self.what == "open_orders":
            return f"{self.name} has {actual} open orders, expected {self.expected}"
        return f"{self.name} {self.what} is {micro_to_usdc(actual)} USDC, expected {micro_to_usdc(self.expected)}"


@dataclass
class PositionCheck(Check):
    name: str
    addr: bytes
    market: MarketDef
    expected: int

    def describe(self) -> str:
        return f"{self.name} {self.market.name} position = {_lots(self.market, self.expected)}"

    def evaluate(self, run: ScenarioRun) -> str | None:
        from clearinghouse.spec.state.keys import position_key

        pos = run.view().get(position_key(self.market.index, self.addr))
        actual = pos.size if pos is not None else 0
        if actual == self.expected:
            return None
        return f"{self.name} {self.market.name} position is {_lots(self.market, actual)}, expected {_lots(self.market, self.expected)}"


@dataclass
class EntryCheck(Check):
    name: str
    addr: bytes
    market: MarketDef
    expected: Fraction  # USDC per base unit

    def describe(self) -> str:
        return f"{self.name} {self.market.name} entry price = {_frac_text(self.expected)}"

    def evaluate(self, run: ScenarioRun) -> str | None:
        from clearinghouse.spec.state.keys import position_key

        pos = run.view().get(position_key(self.market.index, self.addr))
        if pos is None or pos.size == 0:
            return f"{self.name} has no {self.market.name} position (expected entry price {_frac_text(self.expected)})"
        actual = Fraction(abs(pos.cost), abs(pos.size)) / 10 ** (6 - self.market.sz_decimals)
        if actual == self.expected:
            return None
        return (
            f"{self.name} {self.market.name} entry price is {_frac_text(actual)}, expected {_frac_text(self.expected)}"
        )


@dataclass
class PriceCheck(Check):
    market: MarketDef
    what: str  # mark | oracle
    expected: int

    def describe(self) -> str:
        return f"{self.market.name} {self.what} price = {_price(self.market, self.expected)}"

    def evaluate(self, run: ScenarioRun) -> str | None:
        from clearinghouse.spec.state.keys import market_state_key

        ms = run.view().get(market_state_key(self.market.index))
        actual = ms.mark_price if self.what == "mark" else ms.oracle_price
        if actual == self.expected:
            return None
        return f"{self.market.name} {self.what} price is {_price(self.market, actual)}, expected {_price(self.market, self.expected)}"


@dataclass
class EventCheck(Check):
    event_class: type
    """The event type the scenario named (resolved by the parser from ``EVENT_CLASSES``)."""
    conds: dict[str, Any]
    count: int | None
    within: str
    sc: Scenario

    @property
    def event(self) -> str:
        """The event type's name, as the scenario file spells it (for messages)."""
        return self.event_class.__name__

    def describe(self) -> str:
        where = ", ".join(f"{k} = {_cond_text(v)}" for k, v in self.conds.items())
        n = "at least one" if self.count is None else f"exactly {self.count}"
        scope = "in the last block" if self.within == "block" else "so far"
        return f"{n} {self.event} event{' with ' + where if where else ''} {scope}"

    def matches(self, event: Any) -> bool:
        if not isinstance(event, self.event_class):
            return False
        market = getattr(event, "market", None)
        for key, want in self.conds.items():
            got = getattr(event, key)
            if not _field_equal(key, got, want, market, self.sc):
                return False
        return True

    def evaluate(self, run: ScenarioRun) -> str | None:
        if self.within == "block":
            events = run.blocks[-1].events if run.blocks else []
        else:
            events = [e for b in run.blocks for e in b.events]
        n = sum(1 for e in events if self.matches(e))
        if (self.count is None and n >= 1) or n == self.count:
            return None
        same_type = sum(1 for e in events if isinstance(e, self.event_class))
        return f"expected {self.describe()}, found {n} ({same_type} {self.event} event(s) in scope)"


def _field_equal(key: str, got: Any, want: Any, market: Any, sc: Scenario) -> bool:
    from clearinghouse.tools.units import PRICE_FIELDS, SIZE_FIELDS, USDC_FIELDS

    if isinstance(want, _Addr):
        return isinstance(got, (bytes, bytearray)) and bytes(got) == want.addr
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got if isinstance(want, bool) and isinstance(got, bool) else False
    if isinstance(want, Decimal):
        if not isinstance(got, int):
            return False
        try:
            if key in USDC_FIELDS:
                return usdc_to_micro(want) == got
            m = sc.markets[market] if isinstance(market, int) and 0 <= market < len(sc.markets) else None
            if key in PRICE_FIELDS and m is not None:
                return price_to_units(want, m.sz_decimals) == got
            if key in SIZE_FIELDS and m is not None:
                return size_to_lots(want, m.sz_decimals) == got
        except UnitError:
            return False
        return want == got
    if isinstance(got, (bytes, bytearray)):
        return isinstance(want, str) and bytes(got).hex() == want.lower().removeprefix("0x")
    return got == want


def _cond_text(v: Any) -> str:
    if isinstance(v, _Addr):
        return v.label
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _lots(m: MarketDef, lots: int) -> str:
    from clearinghouse.tools.units import lots_to_size

    return f"{lots_to_size(lots, m.sz_decimals)} {m.name}"


def _price(m: MarketDef, units: int) -> str:
    from clearinghouse.tools.units import units_to_price

    return units_to_price(units, m.sz_decimals)


def _frac_text(f: Fraction) -> str:
    from clearinghouse.tools.units import exact_or_approx

    return exact_or_approx(f)


def account_state(view: Any, addr: bytes, sc: Scenario | None = None, legend: Any = None) -> dict[str, Any]:
    """An account's numbers: cash, total value (cross + isolated), positions with entry and mark."""
    from clearinghouse.spec.state.accounts import get_account
    from clearinghouse.spec.state.keys import (
        market_spec_key,
        market_state_key,
        position_key,
    )
    from clearinghouse.spec.trading.margin import cross_health, isolated_health

    acct = get_account(view, addr)
    health = cross_health(view, addr)
    value = health.value
    positions = []
    for market in acct.open_markets:
        pos = view.get(position_key(market, addr))
        if pos is None or pos.size == 0:
            continue
        spec = view.get(market_spec_key(market))
        mark = view.get(market_state_key(market)).mark_price
        upnl = pos.size * mark - pos.cost
        iso_value = isolated_health(view, market, pos).value  # unsettled funding counted (protocol §11.6)
        if not pos.is_cross:
            value += iso_value
        from clearinghouse.tools.units import exact_or_approx, lots_to_size, units_to_price

        entry = Fraction(abs(pos.cost), abs(pos.size)) / 10 ** (6 - spec.sz_decimals)
        positions.append(
            {
                "market": market,
                "market_name": spec.name,
                "size": pos.size,
                "size_base": lots_to_size(pos.size, spec.sz_decimals),
                "cost": pos.cost,
                "entry_price_usdc": exact_or_approx(entry).replace(",", ""),
                "mark": mark,
                "mark_usdc": units_to_price(mark, spec.sz_decimals),
                "unrealized_pnl": upnl,
                "unrealized_pnl_usdc": micro_to_usdc(upnl),
                "leverage": pos.leverage,
                "mode": "cross" if pos.is_cross else "isolated",
                "isolated_cash": pos.iso_cash,
                "isolated_cash_usdc": micro_to_usdc(pos.iso_cash),
                "isolated_value": None if pos.is_cross else iso_value,
                "isolated_value_usdc": None if pos.is_cross else micro_to_usdc(iso_value),
            }
        )
    return {
        "address": checksum_address(addr),
        "name": (sc.names().get(addr) if sc is not None else None),
        "cash": acct.cash,
        "cash_usdc": micro_to_usdc(acct.cash),
        "value": value,
        "value_usdc": micro_to_usdc(value),
        "cross_value": health.value,
        "cross_maintenance_margin": health.maintenance,
        "open_orders": acct.open_orders,
        "positions": positions,
    }
