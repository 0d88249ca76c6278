"""``clearinghouse explain``: why an account was liquidated or deleveraged, in plain language.

Display code only (like ``reporting.py``): it reads committed events and
state, formats integers as human decimals, and never feeds anything back
into the transition. Ratios shown as decimals (ADL indexes) are
approximations for reading; the exact fractions are always printed beside
them, and the exact ones are what the chain compared.

Three layers, usable on their own:

* ``Legend`` and ``event_json`` / ``event_text``: turn any event into JSON
  (raw integers plus human decimal strings, names for known addresses) or a
  readable line; ``scenario run`` uses them too;
* ``explain_events``: given per-height event lists, the structured
  explanation for one account (works on synthetic events too);
* ``load_history``: events per height from a log file (replayed in memory)
  or an LMDB state directory (``engine.load_block_events``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import msgspec

from clearinghouse.spec.constants import CROSS
from clearinghouse.spec.events import (
    AgentSet,
    Deposited,
    Fill,
    FundingPaid,
    FundingSettled,
    MarginMoved,
    OrderStatus,
    PositionChanged,
    PositionTransfer,
    PricesSet,
    Receipt,
    Transferred,
    Withdrew,
)
from clearinghouse.spec.state.keys import INSURANCE_FUND, market_spec_key
from clearinghouse.spec.waterfall.events import (
    AdlQueue,
    AdlShortfall,
    AdlStep,
    Backstop,
    Clawback,
    DeficitCover,
    Haircut,
    InsuranceCover,
    LiquidationTriggered,
    MarketLiquidation,
)
from clearinghouse.tools.names import SYSTEM_ALIASES, SYSTEM_NAMES
from clearinghouse.tools.units import (
    MARKET_FIELDS,
    PRICE_FIELDS,
    SIZE_FIELDS,
    USDC_FIELDS,
    exact_or_approx,
    fraction_to_decimal,
    lots_to_size,
    micro_to_usdc,
    units_to_price,
)
from tx.signing import Signer, checksum_address, parse_address

# ---------------------------------------------------------------- field classes (by field name)
WATERFALL_TYPES: tuple[type, ...] = (
    LiquidationTriggered,
    MarketLiquidation,
    InsuranceCover,
    Backstop,
    AdlQueue,
    AdlStep,
    DeficitCover,
    AdlShortfall,
    Haircut,
    Clawback,
)
"""The waterfall's evidence events (protocol §12.11), for ``isinstance``."""
TRANSFER_WORDS = {"backstop": "backstop", "adl": "ADL", "deficit_cover": "deficit cover"}
"""How a ``PositionTransfer``'s reason reads in text (protocol §10.9)."""


def iso_time(time_ms: int | None) -> str:
    """Block time as ISO-8601 UTC (display)."""
    if time_ms is None:
        return "time unknown"
    t = (
        _dt.datetime.fromtimestamp(time_ms / 1000, tz=_dt.UTC)
        if time_ms % 1000
        else _dt.datetime.fromtimestamp(time_ms // 1000, tz=_dt.UTC)
    )
    text = t.isoformat(timespec="milliseconds" if time_ms % 1000 else "seconds")
    return text.replace("+00:00", "Z")


def resolve_account(text: str) -> bytes:
    """A 0x address, a system account name (``insurance_fund``, ``fee_pool``) or a test-key name.

    Names are the deterministic, insecure test keys of ``Signer.from_name``:
    "alice" is the account the scenario and demo tools call alice.
    """
    if text.startswith("0x") or text.startswith("0X"):
        return parse_address(text)
    if text in SYSTEM_ALIASES:
        return SYSTEM_ALIASES[text]
    if not text:
        raise ValueError("empty account name")
    return Signer.from_name(text).address


# ---------------------------------------------------------------- legend
@dataclass
class MarketInfo:
    index: int
    name: str
    sz_decimals: int


@dataclass
class Legend:
    """What a reader needs to turn integers into words: market names and units, account names."""

    markets: list[MarketInfo] = field(default_factory=list)
    names: dict[bytes, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for addr, name in SYSTEM_NAMES.items():
            self.names.setdefault(addr, name)

    @classmethod
    def from_view(cls, view: Any, names: dict[bytes, str] | None = None) -> Legend:
        """Markets from committed state (chain record + specs)."""
        from clearinghouse.spec.state.keys import CHAIN_KEY

        chain = view.get(CHAIN_KEY)
        markets = []
        for i in range(chain.market_count if chain is not None else 0):
            spec = view.get(market_spec_key(i))
            markets.append(MarketInfo(index=i, name=spec.name, sz_decimals=spec.sz_decimals))
        return cls(markets=markets, names=dict(names or {}))

    # -- markets
    def market(self, index: int | None) -> MarketInfo | None:
        if index is None or not isinstance(index, int) or not 0 <= index < len(self.markets):
            return None
        return self.markets[index]

    def market_name(self, index: int) -> str:
        if index == CROSS:
            return "cross"
        m = self.market(index)
        return m.name if m is not None else f"market {index}"

    def unit_phrase(self, unit: int) -> str:
        """'cross account' or 'isolated BTC position'."""
        return "cross account" if unit == CROSS else f"isolated {self.market_name(unit)} position"

    def price(self, market: int | None, units: int, *, grouping: bool = True) -> str:
        m = self.market(market)
        return units_to_price(units, m.sz_decimals, grouping=grouping) if m else f"{units} units"

    def size(self, market: int | None, lots: int, *, grouping: bool = True) -> str:
        m = self.market(market)
        return lots_to_size(lots, m.sz_decimals, grouping=grouping) if m else f"{lots} lots"

    def sized(self, market: int | None, lots: int) -> str:
        """'0.3 BTC'."""
        m = self.market(market)
        return f"{self.size(market, lots)} {m.name}" if m else f"{lots} lots"

    @staticmethod
    def usdc(micro: int, *, grouping: bool = True, signed: bool = False) -> str:
        text = micro_to_usdc(micro, grouping=grouping)
        return f"+{text}" if signed and micro > 0 else text

    def entry(self, market: int | None, cost: int, size: int) -> str:
        """Entry price |cost| / |size| in USDC: exact when short, else '≈' an approximation."""
        if size == 0:
            return "-"
        m = self.market(market)
        if m is None:
            return fraction_to_decimal(abs(cost), abs(size))
        return exact_or_approx(Fraction(abs(cost), abs(size)) / 10 ** (6 - m.sz_decimals))

    # -- accounts
    def name(self, addr: bytes) -> str | None:
        return self.names.get(bytes(addr))

    def who(self, addr: bytes) -> str:
        """A name if known, else the checksummed address shortened."""
        addr = bytes(addr)
        n = self.names.get(addr)
        if n is not None:
            return n
        if len(addr) != 20:
            return "0x" + addr.hex() if addr else "-"
        full = checksum_address(addr)
        return f"{full[:6]}…{full[-4:]}"

    def who_full(self, addr: bytes) -> str:
        """'alice (0x7D88…)' with the full checksummed address."""
        addr = bytes(addr)
        full = checksum_address(addr)
        n = self.names.get(addr)
        return f"{n} ({full})" if n else full


# ---------------------------------------------------------------- event -> JSON
def _struct_fields(obj: Any) -> list[str]:
    return list(getattr(type(obj), "__struct_fields__", ()))


def event_json(event: Any, legend: Legend, *, market: int | None = None) -> dict[str, Any]:
    """An event (or nested struct) as a JSON object: raw fields plus human companions.

    ``{"type": ClassName, <field>: raw value, ...}`` with: 20-byte addresses as
    EIP-55 strings plus ``<field>_name`` when known; other bytes as hex;
    ``<field>_name`` for market indexes ("cross" for ``CROSS``); ``<field>_usdc``
    decimal strings for prices and USDC amounts; ``<field>_base`` for sizes
    (base-asset units); ``index_decimal`` (display approximation) next to
    ``index_num``/``index_den``.
    """
    out: dict[str, Any] = {"type": type(event).__name__}
    names = _struct_fields(event)
    own_market = getattr(event, "market", None)
    if isinstance(own_market, int) and own_market != CROSS:
        market = own_market
    elif market is None:
        unit = getattr(event, "unit", None)
        if isinstance(unit, int) and unit != CROSS:
            market = unit
    for name in names:
        value = getattr(event, name)
        _put_field(out, name, value, legend, market)
    if "index_num" in out and "index_den" in out:
        try:
            out["index_decimal"] = fraction_to_decimal(int(out["index_num"]), int(out["index_den"]))
        except (ValueError, ZeroDivisionError):
            pass
    return out


def _put_field(out: dict[str, Any], name: str, value: Any, legend: Legend, market: int | None) -> None:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value)
        if len(value) == 20:
            out[name] = checksum_address(value)
            known = legend.name(value)
            if known is not None:
                out[f"{name}_name"] = known
        else:
            out[name] = value.hex()
        return
    if isinstance(value, msgspec.Struct):
        out[name] = event_json(value, legend, market=market)
        out[name].pop("type", None)
        return
    if isinstance(value, (list, tuple)):
        items: list[Any] = []
        for v in value:
            if isinstance(v, msgspec.Struct):
                d = event_json(v, legend, market=market)
                d.pop("type", None)
                items.append(d)
            elif isinstance(v, (bytes, bytearray)):
                items.append(checksum_address(bytes(v)) if len(v) == 20 else bytes(v).hex())
            else:
                items.append(msgspec.to_builtins(v))
        out[name] = items
        return
    out[name] = msgspec.to_builtins(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return
    if name in MARKET_FIELDS:
        out[f"{name}_name"] = legend.market_name(value)
    elif name in USDC_FIELDS:
        out[f"{name}_usdc"] = micro_to_usdc(value)
    elif name in PRICE_FIELDS and legend.market(market) is not None:
        out[f"{name}_usdc"] = legend.price(market, value, grouping=False)
    elif name in SIZE_FIELDS and legend.market(market) is not None:
        out[f"{name}_base"] = legend.size(market, value, grouping=False)


# ---------------------------------------------------------------- event -> text
def _pnl(legend: Legend, micro: int) -> str:
    return legend.usdc(micro, signed=True)


def _positions_lines(legend: Legend, positions: Iterable[Any]) -> list[str]:
    lines = []
    for p in positions:
        side = "long" if p.size > 0 else "short"
        upnl = p.size * p.mark - p.cost
        lines.append(
            f"{legend.market_name(p.market)} {side} {legend.size(p.market, abs(p.size))} at entry {legend.entry(p.market, p.cost, p.size)}, "
            f"mark {legend.price(p.market, p.mark)}: notional {legend.usdc(abs(p.size) * p.mark)} USDC, unrealized PnL {_pnl(legend, upnl)} USDC"
        )
    return lines


def _queue_entry_text(legend: Legend, market: int, e: Any) -> str:
    side = "long" if e.size > 0 else "short"
    return (
        f"{legend.who(e.account)} ({legend.unit_phrase(e.unit) if e.unit == CROSS else 'isolated'}, {side} {legend.size(market, abs(e.size))}) "
        f"index {e.index_num}/{e.index_den} ≈ {_approx(e.index_num, e.index_den)}"
    )


def _approx(num: str, den: str) -> str:
    try:
        return fraction_to_decimal(int(num), int(den))
    except (ValueError, ZeroDivisionError):
        return "?"


def event_text(event: Any, legend: Legend) -> list[str]:
    """One event as readable lines (the first is the headline; waterfall events in full).

    Falls back to a generic ``Type field=value`` rendering for any event this
    module does not know (or whose shape changed), so it never fails on a
    new event type.
    """
    fn = _TEXT.get(type(event))
    if fn is not None:
        try:
            return fn(event, legend)
        except (AttributeError, TypeError, ValueError):
            pass
    return [_generic_text(event, legend)]


def _generic_text(event: Any, legend: Legend) -> str:
    d = event_json(event, legend)
    parts = []
    for k, v in d.items():
        if k == "type" or k.endswith("_name") or k.endswith("_usdc") or k.endswith("_base"):
            continue
        shown = d.get(f"{k}_name") or d.get(f"{k}_usdc") or d.get(f"{k}_base") or v
        parts.append(f"{k}={shown}")
    return f"{d['type']} " + " ".join(parts)


def _t_receipt(e: Any, L: Legend) -> list[str]:
    who = L.who(e.account) if e.account else (L.who(e.signer) if e.signer else "?")
    if e.signer and e.account and bytes(e.signer) != bytes(e.account):
        who += f" (signed by {L.who(e.signer)})"
    if e.ok:
        return [f"tx {e.tx_index}: {who} {e.action} ok"]
    return [f"tx {e.tx_index}: {who} {e.action} REJECTED {e.code}: {e.message}"]


def _t_deposited(e: Any, L: Legend) -> list[str]:
    return [f"deposit of {L.usdc(e.amount)} USDC to {L.who(e.account)} (bridge ref {e.ref})"]


def _t_withdrew(e: Any, L: Legend) -> list[str]:
    return [f"{L.who(e.account)} withdrew {L.usdc(e.amount)} USDC to {L.who(e.destination)}"]


def _t_transferred(e: Any, L: Legend) -> list[str]:
    return [f"{L.who(e.source)} transferred {L.usdc(e.amount)} USDC to {L.who(e.destination)}"]


def _t_agent(e: Any, L: Legend) -> list[str]:
    return [f"{L.who(e.owner)} {'approved' if e.approved else 'revoked'} agent {L.who(e.agent)}"]


def _t_order_status(e: Any, L: Legend) -> list[str]:
    reason = f" ({e.reason})" if e.reason else ""
    left = f", {L.size(e.market, e.remaining)} left" if e.remaining else ""
    return [f"order #{e.oid} of {L.who(e.owner)} in {L.market_name(e.market)}: {e.status}{reason}{left}"]


def _t_fill(e: Any, L: Legend) -> list[str]:
    buyer, seller = (e.taker, e.maker) if e.taker_is_buy else (e.maker, e.taker)
    kind = " [liquidation]" if e.liquidation else ""
    line = (
        f"fill{kind} {L.sized(e.market, e.size)} at {L.price(e.market, e.price)}: {L.who(buyer)} buys from {L.who(seller)} "
        f"(taker {L.who(e.taker)} #{e.taker_oid}, maker {L.who(e.maker)} #{e.maker_oid}); "
        f"fees {L.usdc(e.taker_fee)} / {L.usdc(e.maker_fee)} USDC"
    )
    return [line + _realized_suffix(L, (e.taker, e.taker_realized_pnl), (e.maker, e.maker_realized_pnl))]


def _realized_suffix(L: Legend, *sides: tuple[bytes, int]) -> str:
    """``"; realized <who> <pnl>, ... USDC"`` for the sides that realized something, else ``""``."""
    pnl = [f"{L.who(who)} {_pnl(L, amount)}" for who, amount in sides if amount]
    return f"; realized {', '.join(pnl)} USDC" if pnl else ""


def _t_transfer(e: Any, L: Legend) -> list[str]:
    buyer, seller = (e.closing, e.counterparty) if e.closing_is_buy else (e.counterparty, e.closing)
    line = (
        f"position transfer [{e.reason}] {L.sized(e.market, e.size)} at {L.price(e.market, e.price)}: "
        f"{L.who(buyer)} buys from {L.who(seller)} (closing {L.who(e.closing)}; no order, no fee)"
    )
    return [
        line + _realized_suffix(L, (e.closing, e.closing_realized_pnl), (e.counterparty, e.counterparty_realized_pnl))
    ]


def _t_position(e: Any, L: Legend) -> list[str]:
    mode = "cross" if e.is_cross else f"isolated, margin {L.usdc(e.iso_cash)} USDC"
    if e.size == 0:
        return [f"{L.who(e.account)} {L.market_name(e.market)}: no position, {e.leverage}x {mode}"]
    side = "long" if e.size > 0 else "short"
    return [
        f"{L.who(e.account)} {L.market_name(e.market)}: {side} {L.size(e.market, abs(e.size))} at entry {L.entry(e.market, e.cost, e.size)}, {e.leverage}x {mode}"
    ]


def _t_margin_moved(e: Any, L: Legend) -> list[str]:
    direction = "into" if e.delta > 0 else "out of"
    return [
        f"{L.who(e.account)} moved {L.usdc(abs(e.delta))} USDC {direction} its isolated {L.market_name(e.market)} margin"
    ]


def _t_prices(e: Any, L: Legend) -> list[str]:
    ext = f", external {L.price(e.market, e.external_price)}" if getattr(e, "external_price", 0) else ""
    return [
        f"{L.market_name(e.market)} prices: oracle {L.price(e.market, e.oracle_price)}{ext}, mark {L.price(e.market, e.mark_price)} ({e.publishers} publisher(s))"
    ]


def _t_funding_paid(e: Any, L: Legend) -> list[str]:
    verb = "paid" if e.amount > 0 else "received"
    swept = f"; {L.usdc(e.swept)} USDC of rounding dust to the fund" if e.swept else ""
    return [
        f"funding settled: {L.who(e.account)} {verb} {L.usdc(abs(e.amount))} USDC on {L.market_name(e.market)} "
        f"(position {L.size(e.market, e.size)}, accrued since it last changed){swept}"
    ]


def _t_funding_settled(e: Any, L: Legend) -> list[str]:
    return [
        f"{L.market_name(e.market)} funding hour: rate {e.rate_ppb} ppb at oracle {L.price(e.market, e.oracle_price)}; "
        f"index +{e.index_step} -> {e.funding_index} (10^-9 micro-USDC per lot; paid when each position is next touched)"
    ]


def _t_liq_triggered(e: Any, L: Legend) -> list[str]:
    lines = [
        f"LIQUIDATION of {L.who(e.account)}'s {L.unit_phrase(e.market)}: value {L.usdc(e.value)} USDC < maintenance margin "
        f"{L.usdc(e.maintenance_margin)} USDC at the mark (method: {e.method})"
    ]
    lines += ["  " + s for s in _positions_lines(L, e.positions)]
    return lines


def _t_market_liq(e: Any, L: Legend) -> list[str]:
    side = "buy" if e.side_is_buy else "sell"
    part = " (partial: 20% slice)" if e.partial else ""
    cool = f", cooldown until {iso_time(e.cooldown_until_ms)}" if e.cooldown_until_ms else ""
    return [
        f"liquidation order for {L.who(e.account)} ({L.unit_phrase(e.unit)}): reduce-only {side} {L.sized(e.market, e.ordered)} "
        f"limit {L.price(e.market, e.limit_price)}, filled {L.size(e.market, e.filled)}{part}{cool}"
    ]


def _t_insurance(e: Any, L: Legend) -> list[str]:
    short = e.deficit - e.paid
    tail = f"; {L.usdc(short)} USDC not covered" if short > 0 else ""
    return [
        f"insurance fund covers {L.who(e.account)}'s {L.unit_phrase(e.unit)}: deficit {L.usdc(e.deficit)} USDC, paid {L.usdc(e.paid)} "
        f"(fund {L.usdc(e.fund_before)} -> {L.usdc(e.fund_after)} USDC){tail}"
    ]


def _t_backstop(e: Any, L: Legend) -> list[str]:
    lines = [
        f"BACKSTOP: the insurance fund takes over {L.who(e.account)}'s {L.unit_phrase(e.unit)} ({e.reason}): value {L.usdc(e.value)} USDC, "
        f"maintenance margin {L.usdc(e.maintenance_margin)} USDC, margin taken {L.usdc(e.margin_taken)} USDC "
        f"(fund {L.usdc(e.fund_before)} -> {L.usdc(e.fund_after)} USDC)"
    ]
    lines += ["  " + s for s in _positions_lines(L, e.positions)]
    return lines


def _t_adl_queue(e: Any, L: Legend) -> list[str]:
    lines = [
        f"ADL QUEUE in {L.market_name(e.market)} for {L.who(e.underwater)}'s {L.unit_phrase(e.underwater_unit)}: underwater size "
        f"{L.size(e.market, e.underwater_size)} at bankruptcy price {L.price(e.market, e.bankruptcy_price)}; policy {e.policy}, "
        f"{e.queue_length} eligible, ranking hash {bytes(e.ranking_hash).hex()}"
    ]
    for i, entry in enumerate(e.top, 1):
        lines.append(f"  #{i} {_queue_entry_text(L, e.market, entry)}")
    return lines


def _t_adl_step(e: Any, L: Legend) -> list[str]:
    lines = [
        f"ADL STEP in {L.market_name(e.market)}: {L.who(e.counterparty)} (rank {e.rank}, index {e.index_num}/{e.index_den} ≈ "
        f"{_approx(e.index_num, e.index_den)}) closes {L.sized(e.market, e.size)} at {L.price(e.market, e.price)} against "
        f"{L.who(e.underwater)}, realizing {_pnl(L, e.realized_pnl)} USDC; underwater size left {L.size(e.market, e.remaining_after)}"
    ]
    for entry in e.neighbour_above:
        lines.append(f"  above: {_queue_entry_text(L, e.market, entry)}")
    for entry in e.neighbour_below:
        lines.append(f"  below: {_queue_entry_text(L, e.market, entry)}")
    return lines


def _t_deficit_cover(e: Any, L: Legend) -> list[str]:
    return [
        f"DEFICIT COVER in {L.market_name(e.market)}: {L.who(e.counterparty)} (rank {e.rank}, index {e.index_num}/{e.index_den} ≈ "
        f"{_approx(e.index_num, e.index_den)}) closes {L.sized(e.market, e.size)} at reference {L.price(e.market, e.reference_price)}, "
        f"realizing {_pnl(L, e.realized_pnl)} USDC, covering {L.usdc(e.covered)} USDC of {L.who(e.underwater)}'s deficit; "
        f"{L.usdc(e.deficit_remaining)} USDC left"
    ]


def _t_shortfall(e: Any, L: Legend) -> list[str]:
    if e.unmatched == 0:
        return [
            f"ADL SHORTFALL ({L.market_name(e.market)}): {L.who(e.underwater)}'s deficit exceeded what the haircut pool was worth: "
            f"it stays as the insurance fund's bad debt (protocol §12.12)"
        ]
    return [
        f"ADL SHORTFALL in {L.market_name(e.market)}: {L.size(e.market, abs(e.unmatched))} of {L.who(e.underwater)}'s position "
        f"could not be matched (the opposite side holds no more eligible lots); it stays open (protocol §12.7)"
    ]


def _t_haircut(e: Any, L: Legend) -> list[str]:
    return [
        f"HAIRCUT: {L.who(e.account)}'s {L.unit_phrase(e.unit)} (value {L.usdc(e.value_before)} USDC) pays {L.usdc(e.amount)} USDC "
        f"of the insurance fund's {L.usdc(e.deficit)} USDC deficit, pro rata to value over a pool worth {L.usdc(int(e.pool_value))} USDC; "
        f"{L.usdc(e.deficit_remaining)} USDC left"
    ]


def _t_clawback(e: Any, L: Legend) -> list[str]:
    return [
        f"CLAWBACK: {L.who(e.account)}'s {L.unit_phrase(e.unit)} (value {L.usdc(e.value_before)} USDC, profit capacity "
        f"{L.usdc(e.capacity)} USDC) gives {L.usdc(e.amount)} USDC of {L.who(e.underwater)}'s {L.usdc(e.deficit)} USDC "
        f"deficit, pro rata to profit over a pool of {L.usdc(int(e.pool))} USDC; positions stay open; "
        f"{L.usdc(e.deficit_remaining)} USDC left"
    ]


_TEXT: dict[type, Any] = {
    Receipt: _t_receipt,
    Deposited: _t_deposited,
    Withdrew: _t_withdrew,
    Transferred: _t_transferred,
    AgentSet: _t_agent,
    OrderStatus: _t_order_status,
    Fill: _t_fill,
    PositionTransfer: _t_transfer,
    PositionChanged: _t_position,
    MarginMoved: _t_margin_moved,
    PricesSet: _t_prices,
    FundingPaid: _t_funding_paid,
    FundingSettled: _t_funding_settled,
    LiquidationTriggered: _t_liq_triggered,
    MarketLiquidation: _t_market_liq,
    InsuranceCover: _t_insurance,
    Backstop: _t_backstop,
    AdlQueue: _t_adl_queue,
    AdlStep: _t_adl_step,
    DeficitCover: _t_deficit_cover,
    AdlShortfall: _t_shortfall,
    Haircut: _t_haircut,
    Clawback: _t_clawback,
}


# ---------------------------------------------------------------- history
@dataclass
class BlockEvents:
    height: int
    time_ms: int | None
    events: list[Any]


@dataclass
class History:
    """Events per height of one chain, and the legend to read them."""

    source: str
    kind: str  # "log" or "lmdb"
    height: int
    policy: str
    legend: Legend
    blocks: list[BlockEvents]
    missing: list[int] = field(default_factory=list)


class ExplainError(Exception):
    """A user-facing failure of explain (bad source, unknown height); the CLI prints it as one line."""


def load_history(path: str, names: dict[bytes, str] | None = None) -> History:
    """Events per height from a log file (replayed in memory) or an LMDB state directory."""
    from clearinghouse.chain.engine import (
        Engine,
        load_block_events,
        load_block_header,
        replay_log,
    )
    from clearinghouse.spec.state.keys import CHAIN_KEY
    from state import LmdbStore, MemoryStore

    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "data.mdb")):
            raise ExplainError(f"{path} is a directory but not an LMDB state database (no data.mdb)")
        with LmdbStore(path, readonly=True) as store:
            if store.height < 0:
                raise ExplainError(f"the state database at {path} is empty")
            engine = Engine(store)
            blocks, missing = [], []
            for h in range(1, store.height + 1):
                events = load_block_events(store, h)
                if events is None:
                    missing.append(h)
                    continue
                header = load_block_header(store, h)
                t = header.time_ms if header is not None else None
                blocks.append(BlockEvents(height=h, time_ms=t, events=events))
            view = engine.view()
            chain = view.get(CHAIN_KEY)
            return History(
                source=os.path.abspath(path),
                kind="lmdb",
                height=store.height,
                policy=chain.policy,
                legend=Legend.from_view(view, names),
                blocks=blocks,
                missing=missing,
            )
    if not os.path.isfile(path):
        raise ExplainError(f"no such log file or state directory: {path}")
    memory = MemoryStore()
    engine = Engine(memory)
    blocks = []

    def collect(entry: Any, executed: Any) -> None:
        if executed is not None:
            blocks.append(BlockEvents(height=executed.height, time_ms=executed.time_ms, events=list(executed.events)))

    replay_log(engine, path, on_block=collect)
    if memory.height < 0:
        raise ExplainError(f"the log {path} holds no genesis")
    view = engine.view()
    chain = view.get(CHAIN_KEY)
    return History(
        source=os.path.abspath(path),
        kind="log",
        height=memory.height,
        policy=chain.policy,
        legend=Legend.from_view(view, names),
        blocks=blocks,
    )


# ---------------------------------------------------------------- explanation
def _eq(a: Any, b: bytes) -> bool:
    return isinstance(a, (bytes, bytearray)) and bytes(a) == b


def involves(e: Any, addr: bytes) -> bool:
    """Whether a waterfall event (a liquidation order's fill, a position transfer) concerns ``addr``."""
    if isinstance(e, Fill):
        return bool(e.liquidation) and (_eq(e.taker, addr) or _eq(e.maker, addr))
    if isinstance(e, PositionTransfer):
        return _eq(e.closing, addr) or _eq(e.counterparty, addr)
    if not isinstance(e, WATERFALL_TYPES):
        return False
    for f in ("account", "underwater", "counterparty"):
        if _eq(getattr(e, f, None), addr):
            return True
    if addr == INSURANCE_FUND and isinstance(e, (InsuranceCover, Backstop)):
        return True
    return False


def explain_events(
    blocks: Iterable[BlockEvents], addr: bytes, legend: Legend, *, height: int | None = None
) -> dict[str, Any]:
    """The structured explanation of what the waterfall did to ``addr`` (optionally at one height).

    Returns ``{"account", "name", "height", "incidents": [...], "nothing_happened"}``;
    each incident has ``height``, ``time_ms``, ``role`` (``liquidated``,
    ``adl_counterparty``, ``deficit_cover_counterparty``, ``insurance_fund``),
    plain-language ``text`` lines, the numbers in structured fields and the
    ``events`` it is built from (as ``event_json``).
    """
    incidents: list[dict[str, Any]] = []
    for block in blocks:
        if height is not None and block.height != height:
            continue
        incidents.extend(_block_incidents(block, addr, legend))
    return {
        "account": checksum_address(addr),
        "name": legend.name(addr),
        "height": height,
        "incidents": incidents,
        "nothing_happened": not incidents,
    }


def _block_incidents(block: BlockEvents, addr: bytes, L: Legend) -> list[dict[str, Any]]:
    events = block.events
    mine = [e for e in events if involves(e, addr)]
    if not mine:
        return []
    out: list[dict[str, Any]] = []
    # As the liquidated / underwater account (the insurance fund too, when it is itself underwater).
    own = [
        e
        for e in mine
        if isinstance(e, WATERFALL_TYPES)
        and (_eq(getattr(e, "account", None), addr) or _eq(getattr(e, "underwater", None), addr))
    ]
    if own:
        out.append(_liquidated_incident(block, addr, own, events, L))
    # As an ADL / deficit-cover counterparty.
    for e in mine:
        if isinstance(e, AdlStep) and _eq(e.counterparty, addr):
            out.append(_adl_counterparty_incident(block, addr, e, events, L))
        elif isinstance(e, DeficitCover) and _eq(e.counterparty, addr):
            out.append(_deficit_counterparty_incident(block, addr, e, events, L))
    # As the insurance fund paying for others.
    if addr == INSURANCE_FUND:
        for e in mine:
            if isinstance(e, InsuranceCover) or isinstance(e, Backstop):
                if not _eq(e.account, addr):
                    out.append(_fund_incident(block, e, L))
    return out


def _head(block: BlockEvents) -> str:
    return f"Height {block.height} ({iso_time(block.time_ms)})"


def _liquidated_incident(
    block: BlockEvents, addr: bytes, own: list[Any], all_events: list[Any], L: Legend
) -> dict[str, Any]:
    who = L.who(addr)
    text: list[str] = []
    data: dict[str, Any] = {
        "height": block.height,
        "time_ms": block.time_ms,
        "role": "liquidated",
        "triggers": [],
        "orders": [],
        "fills": [],
        "insurance": [],
        "backstops": [],
        "adl": [],
        "deficit_covers": [],
        "shortfalls": [],
    }
    triggers = [e for e in own if isinstance(e, LiquidationTriggered)]
    for t in triggers:
        shortfall = t.maintenance_margin - t.value
        text.append(f"{_head(block)}: {who}'s {L.unit_phrase(t.market)} was liquidated.")
        text.append(
            f"  Why: at the mark price(s) its value was {L.usdc(t.value)} USDC, below its maintenance margin of "
            f"{L.usdc(t.maintenance_margin)} USDC (short by {L.usdc(shortfall)} USDC)."
        )
        for line in _positions_lines(L, t.positions):
            text.append(f"    {line}")
        text.append(f"  Method: {'reduce-only market orders into the book' if t.method == 'market' else t.method}.")
        data["triggers"].append(
            {
                "unit": t.market,
                "unit_name": L.market_name(t.market),
                "value": t.value,
                "value_usdc": micro_to_usdc(t.value),
                "maintenance_margin": t.maintenance_margin,
                "maintenance_margin_usdc": micro_to_usdc(t.maintenance_margin),
                "shortfall": shortfall,
                "shortfall_usdc": micro_to_usdc(shortfall),
                "method": t.method,
                "positions": [event_json(p, L) for p in t.positions],
            }
        )
    if not triggers:
        text.append(
            f"{_head(block)}: {who} was underwater and went through the liquidation waterfall / ADL (no new trigger this block)."
        )
    orders = [e for e in own if isinstance(e, MarketLiquidation)]
    for o in orders:
        side = "buy" if o.side_is_buy else "sell"
        text.append(
            f"  Into the book: a reduce-only {side} of {L.sized(o.market, o.ordered)} with limit {L.price(o.market, o.limit_price)} USDC; "
            f"{L.size(o.market, o.filled)} filled"
            + (
                " (a partial 20% slice"
                + (f", cooldown until {iso_time(o.cooldown_until_ms)})" if o.cooldown_until_ms else ")")
                if o.partial
                else ""
            )
            + "."
        )
        data["orders"].append(event_json(o, L))
    fills = [
        e for e in all_events if isinstance(e, Fill) and e.liquidation and (_eq(e.taker, addr) or _eq(e.maker, addr))
    ]
    backstop_moves = [
        e
        for e in all_events
        if isinstance(e, PositionTransfer)
        and e.reason == "backstop"
        and (_eq(e.closing, addr) or _eq(e.counterparty, addr))
    ]
    text.extend(_fill_line(f, addr, L) for f in fills)
    backstop_lines = [_transfer_line(t, addr, L) for t in backstop_moves]
    data["fills"] = [event_json(f, L) for f in fills]
    data["transfers"] = [event_json(t, L) for t in backstop_moves]
    covers = [e for e in own if isinstance(e, InsuranceCover)]
    for c in covers:
        uncovered = c.deficit - c.paid
        text.append(
            f"  Insurance fund: the fills left a deficit of {L.usdc(c.deficit)} USDC; the fund paid {L.usdc(c.paid)} USDC "
            f"(fund {L.usdc(c.fund_before)} -> {L.usdc(c.fund_after)} USDC)"
            + (f"; {L.usdc(uncovered)} USDC remained uncovered." if uncovered > 0 else ".")
        )
        data["insurance"].append(event_json(c, L))
    backstops = [e for e in own if isinstance(e, Backstop)]
    for b in backstops:
        text.append(
            f"  Backstop ({b.reason}): the insurance fund took over the {L.unit_phrase(b.unit)} at the mark: value {L.usdc(b.value)} USDC "
            f"vs maintenance margin {L.usdc(b.maintenance_margin)} USDC; margin taken {L.usdc(b.margin_taken)} USDC "
            f"(fund {L.usdc(b.fund_before)} -> {L.usdc(b.fund_after)} USDC)."
        )
        for line in _positions_lines(L, b.positions):
            text.append(f"    {line}")
        data["backstops"].append(event_json(b, L))
    text.extend(backstop_lines)
    if triggers and not backstops:
        text.append("  It was not backstopped.")
    queues = [e for e in own if isinstance(e, AdlQueue)]
    steps = [e for e in own if isinstance(e, AdlStep)]
    for q in queues:
        if q.underwater_size == 0:
            text.append(
                f"  Deficit queue in {L.market_name(q.market)}: {q.queue_length} eligible winner(s) ({q.policy} ranking, hash "
                f"{bytes(q.ranking_hash).hex()}); slices are closed at the reference (bankruptcy) price {L.price(q.market, q.bankruptcy_price)} USDC."
            )
        else:
            at_mark = any(s.market == q.market and s.price != q.bankruptcy_price for s in steps)
            text.append(
                f"  ADL: {L.size(q.market, abs(q.underwater_size))} {L.market_name(q.market)} still underwater, closed at its bankruptcy price "
                f"{L.price(q.market, q.bankruptcy_price)} USDC"
                + (" (then, for the lots no winner could afford at that price, at the mark)" if at_mark else "")
                + f" against a queue of {q.queue_length} ({q.policy} ranking, hash {bytes(q.ranking_hash).hex()})."
            )
        for s in [s for s in steps if s.market == q.market]:
            text.append(
                f"    rank {s.rank}: {L.who(s.counterparty)} took {L.sized(s.market, s.size)} at {L.price(s.market, s.price)} USDC"
                + ("" if s.price == q.bankruptcy_price else " [round 2, at the mark]")
                + f" (realized {_pnl(L, s.realized_pnl)} USDC; left to match {L.size(s.market, s.remaining_after)})"
            )
        data["adl"].append(
            {"queue": event_json(q, L), "steps": [event_json(s, L) for s in steps if s.market == q.market]}
        )
    orphan_steps = [s for s in steps if not any(q.market == s.market for q in queues)]
    if orphan_steps:
        data["adl"].append({"queue": None, "steps": [event_json(s, L) for s in orphan_steps]})
        for s in orphan_steps:
            text.append(
                f"  ADL rank {s.rank}: {L.who(s.counterparty)} took {L.sized(s.market, s.size)} at {L.price(s.market, s.price)} USDC."
            )
    for d in [e for e in own if isinstance(e, DeficitCover)]:
        text.append(
            f"  Deficit cover ({L.market_name(d.market)}): {L.who(d.counterparty)} (rank {d.rank}) closed {L.sized(d.market, d.size)} at the "
            f"reference price {L.price(d.market, d.reference_price)} USDC, covering {L.usdc(d.covered)} USDC; {L.usdc(d.deficit_remaining)} USDC left."
        )
        data["deficit_covers"].append(event_json(d, L))
    for short in [e for e in own if isinstance(e, AdlShortfall)]:
        text.append(
            f"  ADL shortfall: {L.size(short.market, abs(short.unmatched))} {L.market_name(short.market)} could not be matched this block; it is retried next block."
        )
        data["shortfalls"].append(event_json(short, L))
    data["text"] = text
    data["events"] = [event_json(e, L) for e in own]
    return data


def _fill_line(f: Any, addr: bytes, L: Legend) -> str:
    """'sold 1 BTC at 87,600 USDC to dave [liquidation order]; realized ..., fee ...' from ``addr``'s side."""
    mine_is_taker = _eq(f.taker, addr)
    other = f.maker if mine_is_taker else f.taker
    i_buy = f.taker_is_buy if mine_is_taker else not f.taker_is_buy
    pnl = f.taker_realized_pnl if mine_is_taker else f.maker_realized_pnl
    fee = f.taker_fee if mine_is_taker else f.maker_fee
    tag = "liquidation order" if f.liquidation else "order"
    return (
        f"    {'bought' if i_buy else 'sold'} {L.sized(f.market, f.size)} at {L.price(f.market, f.price)} USDC "
        f"{'from' if i_buy else 'to'} {L.who(other)} in the book [{tag}]; realized {_pnl(L, pnl)} USDC, fee {L.usdc(fee)} USDC"
    )


def _transfer_line(t: Any, addr: bytes, L: Legend) -> str:
    """'handed 2.4 BTC long to insurance_fund at 88,700 USDC [backstop transfer: no order, no fee]; realized ...'
    from ``addr``'s side of a ``PositionTransfer`` (protocol §10.9)."""
    mine_is_closing = _eq(t.closing, addr)
    other = t.counterparty if mine_is_closing else t.closing
    i_buy = t.closing_is_buy if mine_is_closing else not t.closing_is_buy
    pnl = t.closing_realized_pnl if mine_is_closing else t.counterparty_realized_pnl
    word = TRANSFER_WORDS.get(t.reason, t.reason)
    return (
        f"    {'bought' if i_buy else 'sold'} {L.sized(t.market, t.size)} at {L.price(t.market, t.price)} USDC "
        f"{'from' if i_buy else 'to'} {L.who(other)} [{word} transfer: no order, no fee]; realized {_pnl(L, pnl)} USDC"
    )


def _queue_for(all_events: list[Any], market: int, underwater: bytes) -> Any:
    found = None
    for e in all_events:
        if isinstance(e, AdlQueue) and e.market == market and _eq(e.underwater, underwater):
            found = e
    return found


def _neighbour_json(entries: list[Any], market: int, L: Legend) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        d = event_json(entry, L, market=market)
        d.pop("type", None)
        out.append(d)
    return out


def _adl_price_basis(q: Any, s: Any, L: Legend) -> str:
    """Why an ADL step closed at its price (protocol §12.7): round 1 closes at the underwater
    position's bankruptcy price, as far as each winner can afford it; round 2 closes what is left at
    the mark, which moves no winner's value."""
    if q is None:
        return "the price the step recorded; this block's events do not include its queue"
    if s.price == q.bankruptcy_price:
        return "the underwater account's bankruptcy price"
    return (
        f"the mark: round 2, for the lots no winner could afford at the bankruptcy price "
        f"{L.price(q.market, q.bankruptcy_price)} USDC; a close at the mark leaves this account's value as it was"
    )


def _adl_counterparty_incident(
    block: BlockEvents, addr: bytes, s: Any, all_events: list[Any], L: Legend
) -> dict[str, Any]:
    who = L.who(addr)
    q = _queue_for(all_events, s.market, bytes(s.underwater))
    side = "short" if _side_of_counterparty(s, q) < 0 else "long"
    text = [f"{_head(block)}: {who} was auto-deleveraged in {L.market_name(s.market)} against {L.who(s.underwater)}."]
    qlen = q.queue_length if q is not None else None
    text.append(
        f"  Queue position: rank {s.rank}"
        + (f" of {qlen}" if qlen is not None else " (queue length not in this block's events)")
        + (f"; {q.policy} ranking, queue hash {bytes(q.ranking_hash).hex()}" if q is not None else "")
        + "."
    )
    text.append(
        f"  Its index: {s.index_num}/{s.index_den} ≈ {_approx(s.index_num, s.index_den)} (exact fraction compared; the decimal is for reading)."
    )
    if s.neighbour_above:
        for n in s.neighbour_above:
            text.append(f"    above it: {_queue_entry_text(L, s.market, n)}")
    else:
        text.append(
            "    above it: nobody (it was first in the queue)" if s.rank == 1 else "    above it: (not recorded)"
        )
    if s.neighbour_below:
        for n in s.neighbour_below:
            text.append(f"    below it: {_queue_entry_text(L, s.market, n)}")
    else:
        text.append("    below it: nobody")
    text.append(
        f"  Closed: {L.sized(s.market, s.size)} of its {side} position at {L.price(s.market, s.price)} USDC "
        f"({_adl_price_basis(q, s, L)}) against {L.who(s.underwater)}, a position transfer "
        f"(no order, no fee); it realized {_pnl(L, s.realized_pnl)} USDC."
    )
    text.append(f"  Underwater size still to match after this step: {L.size(s.market, s.remaining_after)}.")
    transfers = [
        t
        for t in all_events
        if isinstance(t, PositionTransfer)
        and t.reason == "adl"
        and t.market == s.market
        and _eq(t.counterparty, addr)
        and _eq(t.closing, bytes(s.underwater))
    ]
    return {
        "height": block.height,
        "time_ms": block.time_ms,
        "role": "adl_counterparty",
        "market": s.market,
        "market_name": L.market_name(s.market),
        "underwater": checksum_address(bytes(s.underwater)),
        "underwater_name": L.name(bytes(s.underwater)),
        "rank": s.rank,
        "queue_length": qlen,
        "queue_hash": bytes(q.ranking_hash).hex() if q is not None else None,
        "policy": q.policy if q is not None else None,
        "index": {"num": s.index_num, "den": s.index_den, "decimal": _approx(s.index_num, s.index_den)},
        "neighbour_above": _neighbour_json(s.neighbour_above, s.market, L),
        "neighbour_below": _neighbour_json(s.neighbour_below, s.market, L),
        "size": s.size,
        "size_base": L.size(s.market, s.size, grouping=False),
        "price": s.price,
        "price_usdc": L.price(s.market, s.price, grouping=False),
        "realized_pnl": s.realized_pnl,
        "realized_pnl_usdc": micro_to_usdc(s.realized_pnl),
        "remaining_after": s.remaining_after,
        "text": text,
        "events": [event_json(s, L)]
        + ([event_json(q, L)] if q is not None else [])
        + [event_json(t, L) for t in transfers],
    }


def _side_of_counterparty(s: Any, q: Any) -> int:
    """-1 if the counterparty was short (the underwater side long), +1 if long; from the queue or the fill sign."""
    if q is not None:
        return -1 if q.underwater_size > 0 else 1
    for n in list(s.neighbour_above) + list(s.neighbour_below):
        return -1 if n.size < 0 else 1
    return 1


def _deficit_counterparty_incident(
    block: BlockEvents, addr: bytes, d: Any, all_events: list[Any], L: Legend
) -> dict[str, Any]:
    who = L.who(addr)
    q = _queue_for(all_events, d.market, bytes(d.underwater))
    of = f" of {q.queue_length}" if q is not None else ""
    text = [
        f"{_head(block)}: {who} covered {L.usdc(d.covered)} USDC of {L.who(d.underwater)}'s deficit in {L.market_name(d.market)} (seed policy).",
        f"  Queue position: rank {d.rank}{of}; its index {d.index_num}/{d.index_den} ≈ {_approx(d.index_num, d.index_den)} (exact fraction compared).",
        f"  Closed: {L.sized(d.market, d.size)} at the reference price {L.price(d.market, d.reference_price)} USDC against the "
        f"insurance fund, a position transfer (no order, no fee); it realized {_pnl(L, d.realized_pnl)} USDC, covering "
        f"{L.usdc(d.covered)} USDC; deficit left {L.usdc(d.deficit_remaining)} USDC.",
    ]
    if q is not None:
        text.insert(2, f"  Queue: {q.queue_length} eligible, {q.policy} ranking, hash {bytes(q.ranking_hash).hex()}.")
    return {
        "height": block.height,
        "time_ms": block.time_ms,
        "role": "deficit_cover_counterparty",
        "market": d.market,
        "market_name": L.market_name(d.market),
        "underwater": checksum_address(bytes(d.underwater)),
        "underwater_name": L.name(bytes(d.underwater)),
        "rank": d.rank,
        "queue_length": q.queue_length if q is not None else None,
        "queue_hash": bytes(q.ranking_hash).hex() if q is not None else None,
        "index": {"num": d.index_num, "den": d.index_den, "decimal": _approx(d.index_num, d.index_den)},
        "size": d.size,
        "size_base": L.size(d.market, d.size, grouping=False),
        "reference_price": d.reference_price,
        "reference_price_usdc": L.price(d.market, d.reference_price, grouping=False),
        "realized_pnl": d.realized_pnl,
        "realized_pnl_usdc": micro_to_usdc(d.realized_pnl),
        "covered": d.covered,
        "covered_usdc": micro_to_usdc(d.covered),
        "text": text,
        "events": [event_json(d, L)]
        + [
            event_json(t, L)
            for t in all_events
            if isinstance(t, PositionTransfer)
            and t.reason == "deficit_cover"
            and t.market == d.market
            and _eq(t.closing, addr)
        ],
    }


def _fund_incident(block: BlockEvents, e: Any, L: Legend) -> dict[str, Any]:
    if isinstance(e, InsuranceCover):
        line = (
            f"{_head(block)}: the insurance fund paid {L.usdc(e.paid)} USDC of {L.who(e.account)}'s {L.usdc(e.deficit)} USDC deficit "
            f"(fund {L.usdc(e.fund_before)} -> {L.usdc(e.fund_after)} USDC)."
        )
    else:
        line = (
            f"{_head(block)}: the insurance fund took over {L.who(e.account)}'s {L.unit_phrase(e.unit)} ({e.reason}), margin "
            f"{L.usdc(e.margin_taken)} USDC (fund {L.usdc(e.fund_before)} -> {L.usdc(e.fund_after)} USDC)."
        )
    return {
        "height": block.height,
        "time_ms": block.time_ms,
        "role": "insurance_fund",
        "text": [line],
        "events": [event_json(e, L)],
    }


# ---------------------------------------------------------------- rendering
def render_explanation(con: Any, report: dict[str, Any]) -> None:
    from rich.markup import escape

    label = f"{report['name']} ({report['account']})" if report.get("name") else report["account"]
    where = f" at height {report['height']}" if report.get("height") is not None else ""
    con.print(f"[bold]Explain {escape(label)}[/]{where} — {escape(report.get('source', ''))}")
    if report["nothing_happened"]:
        con.print(
            f"  Nothing happened to {escape(label)}{where}: no liquidation, backstop, ADL or deficit cover involved it."
        )
        return
    for inc in report["incidents"]:
        for i, line in enumerate(inc["text"]):
            con.print(("[bold]" + escape(line) + "[/]") if i == 0 else escape(line))
        con.print("")


# ---------------------------------------------------------------- CLI
_ADDRESS_FIELDS = (
    "account",
    "signer",
    "taker",
    "maker",
    "source",
    "destination",
    "owner",
    "underwater",
    "counterparty",
    "closing",
    "agent",
)


def appears(history: History, addr: bytes) -> bool:
    """Whether any event of the chain names ``addr`` (so a derived test-key name is a real account)."""
    for block in history.blocks:
        for e in block.events:
            for f in _ADDRESS_FIELDS:
                v = getattr(e, f, None)
                if isinstance(v, (bytes, bytearray)) and bytes(v) == addr:
                    return True
    return addr in SYSTEM_NAMES


def cmd_explain(args: argparse.Namespace) -> int:
    from clearinghouse.tools import names as N
    from clearinghouse.tools.console import (
        EXIT_OK,
        EXIT_USAGE,
        CliError,
        console,
        print_json,
    )

    if args.height is not None and args.height < 1:
        raise CliError(f"--height must be at least 1, got {args.height}", EXIT_USAGE)
    if args.account.lower().startswith("0x"):
        try:
            parse_address(args.account)
        except ValueError as exc:
            raise CliError(f"bad account {args.account!r}: {exc}", EXIT_USAGE) from None
    try:
        from clearinghouse.tools.scenario.parse import scenario_names

        known = N.known_names(names=args.names, scenario=scenario_names(args.scenario))
    except (N.UnknownName, ValueError) as exc:
        raise CliError(str(exc)) from None
    labels = N.labels(known)
    try:
        history = load_history(args.source, labels)
    except ExplainError as exc:
        raise CliError(str(exc), error_code="NO_SOURCE") from None
    try:
        addr, name = N.resolve(args.account, known, lambda a: appears(history, a))
    except N.UnknownName as exc:
        raise CliError(str(exc), error_code="UNKNOWN_ACCOUNT") from None
    if name:
        history.legend.names.setdefault(addr, name)
    if args.height is not None and args.height > history.height:
        raise CliError(f"height {args.height} is beyond the chain's last block ({history.height})")
    report = explain_events(history.blocks, addr, history.legend, height=args.height)
    report["source"] = history.source
    report["source_kind"] = history.kind
    report["chain_height"] = history.height
    report["policy"] = history.policy
    if history.missing:
        report["heights_without_events"] = history.missing
    if args.json:
        print_json(report)
    else:
        con = console()
        render_explanation(con, report)
        if history.missing:
            con.print(
                f"  note: the store has no events for {len(history.missing)} height(s) (e.g. {history.missing[0]}); they could not be explained."
            )
    return EXIT_OK


def add_explain_command(sub: Any) -> None:
    p = sub.add_parser(
        "explain", help="explain, in plain language, every liquidation/backstop/ADL involving an account"
    )
    p.add_argument("source", metavar="LOG_OR_DB", help="a log file (replayed in memory) or an LMDB state directory")
    p.add_argument(
        "--account",
        required=True,
        metavar="ADDRESS_OR_NAME",
        help="a 0x address, insurance_fund, fee_pool, or a test-key name (Signer.from_name: INSECURE deterministic keys)",
    )
    p.add_argument("--height", type=int, default=None, metavar="H", help="only events at this height")
    from clearinghouse.tools.names import add_name_args

    add_name_args(p)
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    from clearinghouse.tools.console import cli_command

    p.set_defaults(func=cli_command(cmd_explain))
