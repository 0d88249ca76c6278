"""Hyperliquid-shaped exports of a replayed chain (docs/exports.md maps every field).

``clearinghouse export KIND LOG_OR_DB`` streams one record per line (JSON Lines with
Hyperliquid's decimal strings, or CSV) so analysis code written for Hyperliquid's
``userFills``, ``clearinghouseState``, ``userFunding`` and ledger updates runs on a
replayed chain unchanged:

* ``fills``: every fill, once per side (taker and maker), in Hyperliquid's
  ``userFills`` shape; liquidation, backstop and ADL fills carry ``liquidation``;
* ``state --user ADDR [--height H]``: ``clearinghouseState`` at a height;
* ``funding``: every funding payment (``userFunding`` shape);
* ``liquidations``: every waterfall event with its evidence (explain's JSON);
* ``ledger``: deposits, withdrawals, transfers, funding, fees, backstop margin and
  insurance-fund covers (``userNonFundingLedgerUpdates`` shape plus documented types).

Memory is constant in the length of the log: blocks are read (or replayed) one at
a time and only per-account running figures are kept (position sizes, cumulative
funding), which are bounded by the state itself. Tools never write consensus state:
a log is replayed into a private in-memory store, a database is opened read-only.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TextIO

from clearinghouse.spec.constants import CROSS, NO_TX
from clearinghouse.spec.events import (
    Deposited,
    Fill,
    FundingPaid,
    FundingSettled,
    PositionTransfer,
    PricesSet,
    Receipt,
    Transferred,
    Withdrew,
)
from clearinghouse.spec.waterfall.events import (
    AdlQueue,
    AdlShortfall,
    Backstop,
    DeficitCover,
    Haircut,
    InsuranceCover,
    LiquidationTriggered,
)
from clearinghouse.tools.units import format_scaled, micro_to_usdc

ZERO_HASH = "0x" + "00" * 32
"""Hyperliquid's hash of fills and events not caused by a transaction (liquidations, ADL, funding)."""

NOBODY = b""
"""A ``user`` filter no account matches (the fill walk then only updates its running figures)."""

FILL_FIELDS = (
    "coin",
    "px",
    "sz",
    "side",
    "time",
    "startPosition",
    "dir",
    "closedPnl",
    "hash",
    "oid",
    "crossed",
    "fee",
    "tid",
    "feeToken",
)
"""Hyperliquid ``userFills`` fields (``builderFee`` is absent: there are no builders), in CSV column order."""
LIQUIDATION_FIELDS = ("liquidatedUser", "markPx", "method")


class ExportError(Exception):
    """A user-facing export failure (bad source, height out of range); the CLI prints it."""


# ---------------------------------------------------------------- sources
@dataclass
class Market:
    index: int
    name: str
    sz_decimals: int
    max_leverage: int


@dataclass
class BlockEvents:
    height: int
    time_ms: int | None
    events: list[Any]


@dataclass
class Source:
    """A chain to export from: a log (replayed in memory, block by block) or a state database."""

    path: str
    kind: str
    markets: list[Market] = field(default_factory=list)
    genesis: Any = None
    _store: Any = None
    _engine: Any = None
    _log_iter: Any = None

    @classmethod
    def open(cls, path: str) -> Source:
        from clearinghouse.chain.engine import Engine, iter_log
        from clearinghouse.tools.safety import UnsafePath, open_readonly

        if os.path.isdir(path):
            try:
                store = open_readonly(path)
            except UnsafePath as exc:
                raise ExportError(str(exc)) from None
            src = cls(path=os.path.abspath(path), kind="lmdb", _store=store, _engine=Engine(store))
            raw = store.get_meta("genesis")
            if raw is not None:
                from tx.encoding import decode_genesis

                src.genesis = decode_genesis(raw)
            src._load_markets()
            return src
        if not os.path.isfile(path):
            raise ExportError(f"no such log file or state database: {path}")
        store = _LeanMemoryStore()
        src = cls(path=os.path.abspath(path), kind="log", _store=store, _engine=Engine(store))
        src._log_iter = iter_log(path)
        from tx.messages import Genesis

        first = next(src._log_iter, None)
        if first is None or not isinstance(first[1], Genesis):
            raise ExportError(f"{path} holds no genesis")
        src.genesis = first[1]
        src._engine.init_genesis(first[1])
        src._load_markets()
        return src

    def _load_markets(self) -> None:
        from clearinghouse.tools.accounts_view import markets

        self.markets = [Market(m.index, m.name, m.sz_decimals, m.max_leverage) for m in markets(self._engine.view())]

    @property
    def height(self) -> int:
        return self._store.height

    def view(self) -> Any:
        return self._engine.view()

    def blocks(self, until: int | None = None) -> Iterator[BlockEvents]:
        """Each block's events in order (a log is replayed as it is read); stops after ``until``."""
        if self.kind == "lmdb":
            from clearinghouse.chain.engine import load_block_events, load_block_header

            last = self._store.height if until is None else min(until, self._store.height)
            for h in range(1, last + 1):
                events = load_block_events(self._store, h)
                if events is None:
                    raise ExportError(f"the database has no events for height {h}; export from the log instead")
                header = load_block_header(self._store, h)
                yield BlockEvents(h, header.time_ms if header is not None else None, events)
            return
        for _index, entry in self._log_iter:
            h = entry.block.header.height
            if until is not None and h > until:
                return
            executed = self._engine.apply_logged(entry)
            yield BlockEvents(h, executed.time_ms, list(executed.events))

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _lean_store_class() -> Any:
    from state import MemoryStore

    class LeanMemoryStore(MemoryStore):
        """An in-memory store that does not keep per-height events and headers (the export reads them as they come)."""

        def commit_block(self, height: int, changes: Any, meta: Any, *, expected_root: bytes | None = None) -> bytes:
            kept = {k: v for k, v in meta.items() if not k.startswith(("events/", "headers/"))}
            return super().commit_block(height, changes, kept, expected_root=expected_root)

    return LeanMemoryStore


def _LeanMemoryStore() -> Any:  # noqa: N802 (a factory named like the class it makes)
    return _lean_store_class()()


# ---------------------------------------------------------------- number formats
def usd(micro: int) -> str:
    """micro-USDC as Hyperliquid writes USDC: a decimal string, at least one decimal ("0.0")."""
    return _hl(micro_to_usdc(micro))


def px(m: Market, units: int) -> str:
    return _hl(format_scaled(units, 6 - m.sz_decimals))


def sz(m: Market, lots: int) -> str:
    return _hl(format_scaled(lots, m.sz_decimals))


def _hl(text: str) -> str:
    return text if "." in text else text + ".0"


def addr(b: bytes) -> str:
    """Hyperliquid writes addresses in lower case."""
    return "0x" + bytes(b).hex()


# ---------------------------------------------------------------- running figures
@dataclass
class Tracker:
    """Per (account, market) figures the exports need, updated in event order."""

    size: dict[tuple[bytes, int], int] = field(default_factory=dict)
    cum_all: dict[tuple[bytes, int], int] = field(default_factory=dict)
    cum_open: dict[tuple[bytes, int], int] = field(default_factory=dict)
    cum_change: dict[tuple[bytes, int], int] = field(default_factory=dict)
    mark: dict[int, int] = field(default_factory=dict)

    def fill(self, who: bytes, market: int, delta: int) -> int:
        """Apply a fill's signed size change; return the size before."""
        key = (who, market)
        before = self.size.get(key, 0)
        after = before + delta
        if after == 0:
            self.size.pop(key, None)
        else:
            self.size[key] = after
        self.cum_change[key] = 0
        if before == 0 or (before > 0) != (after > 0):
            self.cum_open[key] = 0
        return before

    def funding(self, who: bytes, market: int, paid: int) -> None:
        key = (who, market)
        for d in (self.cum_all, self.cum_open, self.cum_change):
            d[key] = d.get(key, 0) + paid

    def watch(self, ev: Any) -> None:
        if isinstance(ev, PricesSet):
            self.mark[ev.market] = ev.mark_price
        elif isinstance(ev, FundingPaid):
            self.funding(bytes(ev.account), ev.market, ev.amount)


def _direction(before: int, after: int, reason: str | None, liquidated_side: bool, isolated: bool | None) -> str:
    """Hyperliquid's ``dir``; ``reason`` is a position transfer's (None for a fill through the book)."""
    if reason in ("adl", "deficit_cover"):
        return "Auto-Deleveraging"
    if reason == "backstop" and liquidated_side:
        mode = "Isolated" if isolated else "Cross"
        return f"Liquidated {mode} {'Long' if before > 0 else 'Short'}"
    if before == 0:
        return "Open Long" if after > 0 else "Open Short"
    if before > 0:
        if after > before:
            return "Open Long"
        if after >= 0:
            return "Close Long"
        return "Long > Short"
    if after < before:
        return "Open Short"
    if after <= 0:
        return "Close Short"
    return "Short > Long"


# ---------------------------------------------------------------- fills
def iter_fills(
    src: Source, *, user: bytes | None = None, until: int | None = None, tracker: Tracker | None = None
) -> Iterator[dict[str, Any]]:
    """Hyperliquid ``userFills`` records, one per side of every fill (taker first) and of every
    position transfer (backstop, ADL, deficit cover; the closing side first), in chain order.

    Without ``user`` each record also names its ``user`` (the one field Hyperliquid's
    per-user answer leaves implicit).
    """
    t = tracker or Tracker()
    for block in src.blocks(until):
        yield from _block_fills(src, block, t, user)


def _block_fills(src: Source, block: BlockEvents, t: Tracker, user: bytes | None) -> Iterator[dict[str, Any]]:
    tx_ids: dict[int, bytes] = {}
    liquidated: dict[bytes, bool] = {}  # account -> isolated? (the last trigger or backstop in this block)
    underwater: dict[int, bytes] = {}  # market -> the account ADL is deleveraging against
    for i, ev in enumerate(block.events):
        t.watch(ev)
        if isinstance(ev, Receipt):
            tx_ids[ev.tx_index] = bytes(ev.tx_id)
        elif isinstance(ev, LiquidationTriggered):
            liquidated[bytes(ev.account)] = ev.market != CROSS
        elif isinstance(ev, Backstop):
            liquidated[bytes(ev.account)] = ev.unit != CROSS
        elif isinstance(ev, (AdlQueue, AdlShortfall)):
            underwater[ev.market] = bytes(ev.underwater)
        elif isinstance(ev, Fill):
            yield from _fill_sides(src, block, i, ev, t, tx_ids, liquidated, user)
        elif isinstance(ev, PositionTransfer):
            yield from _transfer_sides(src, block, i, ev, t, liquidated, underwater, user)


class _Side(NamedTuple):
    """One side of a fill or position transfer, as a ``userFills`` record sees it."""

    who: bytes
    is_buy: bool
    oid: int
    fee: int
    pnl: int
    crossed: bool


def _fill_sides(
    src: Source,
    block: BlockEvents,
    i: int,
    ev: Any,
    t: Tracker,
    tx_ids: dict[int, bytes],
    liquidated: dict[bytes, bool],
    user: bytes | None,
) -> Iterator[dict[str, Any]]:
    """Both sides of a fill through the book (a trader's order or a liquidation order)."""
    m = src.markets[ev.market]
    taker, maker = bytes(ev.taker), bytes(ev.maker)
    tx_hash = tx_ids.get(ev.tx_index)
    hash_text = "0x" + tx_hash.hex() if tx_hash is not None and ev.tx_index != NO_TX else ZERO_HASH
    liquidation = None
    if ev.liquidation:
        victim = taker if taker in liquidated else maker if maker in liquidated else taker
        liquidation = _liquidation_info(m, t, ev.market, victim, "market")
    sides = (
        _Side(taker, ev.taker_is_buy, ev.taker_oid, ev.taker_fee, ev.taker_realized_pnl, True),
        _Side(maker, not ev.taker_is_buy, ev.maker_oid, ev.maker_fee, ev.maker_realized_pnl, False),
    )
    yield from _side_records(m, block, i, ev, t, sides, hash_text, liquidation, None, liquidated, user)


def _transfer_sides(
    src: Source,
    block: BlockEvents,
    i: int,
    ev: Any,
    t: Tracker,
    liquidated: dict[bytes, bool],
    underwater: dict[int, bytes],
    user: bytes | None,
) -> Iterator[dict[str, Any]]:
    """Both sides of a position transfer (protocol §10.9), shaped as Hyperliquid's ADL/backstop fills:
    no order (``oid`` 0), no fee, ``crossed`` on both sides (no resting order was hit)."""
    m = src.markets[ev.market]
    closing, counterparty = bytes(ev.closing), bytes(ev.counterparty)
    # Backstop and ADL close the liquidated/underwater account itself; a deficit cover closes a
    # winner against the fund on behalf of the underwater account its AdlQueue named.
    victim = underwater.get(ev.market, closing) if ev.reason == "deficit_cover" else closing
    liquidation = _liquidation_info(m, t, ev.market, victim, "backstop")
    sides = (
        _Side(closing, ev.closing_is_buy, 0, 0, ev.closing_realized_pnl, True),
        _Side(counterparty, not ev.closing_is_buy, 0, 0, ev.counterparty_realized_pnl, True),
    )
    yield from _side_records(m, block, i, ev, t, sides, ZERO_HASH, liquidation, ev.reason, liquidated, user)


def _liquidation_info(m: Market, t: Tracker, market: int, victim: bytes, method: str) -> dict[str, Any]:
    """A fill record's ``liquidation`` object; ``method`` is ``market`` for a liquidation order into
    the book, ``backstop`` for a takeover and for ADL (Hyperliquid's published ADL fills carry it)."""
    mark = t.mark.get(market)
    return {"liquidatedUser": addr(victim), "markPx": px(m, mark) if mark is not None else None, "method": method}


def _side_records(
    m: Market,
    block: BlockEvents,
    i: int,
    ev: Any,
    t: Tracker,
    sides: tuple[_Side, _Side],
    hash_text: str,
    liquidation: dict[str, Any] | None,
    reason: str | None,
    liquidated: dict[bytes, bool],
    user: bytes | None,
) -> Iterator[dict[str, Any]]:
    tid = (block.height << 20) | i
    for side in sides:
        delta = ev.size if side.is_buy else -ev.size
        before = t.fill(side.who, ev.market, delta)
        if user is not None and side.who != user:
            continue
        liquidated_side = liquidation is not None and addr(side.who) == liquidation["liquidatedUser"]
        rec: dict[str, Any] = {
            "coin": m.name,
            "px": px(m, ev.price),
            "sz": sz(m, ev.size),
            "side": "B" if side.is_buy else "A",
            "time": block.time_ms,
            "startPosition": sz(m, before),
            "dir": _direction(before, before + delta, reason, liquidated_side, liquidated.get(side.who)),
            "closedPnl": usd(side.pnl),
            "hash": hash_text,
            "oid": side.oid,
            "crossed": side.crossed,
            "fee": usd(side.fee),
            "tid": tid,
            "feeToken": "USDC",
        }
        if liquidation is not None:
            rec["liquidation"] = dict(liquidation)
        if user is None:
            rec["user"] = addr(side.who)
        yield rec


# ---------------------------------------------------------------- funding
def iter_funding(src: Source, *, user: bytes | None = None) -> Iterator[dict[str, Any]]:
    """Hyperliquid ``userFunding`` records: ``{time, hash, delta: {type: "funding", coin, usdc, szi, fundingRate, nSamples}}``.

    ``usdc`` is what the account received (negative when it paid), as on Hyperliquid. Funding is
    lazy (protocol §11.6): one record per ``FundingPaid``, i.e. when a position settles what it
    accrued since it last changed size, possibly over several hours; ``fundingRate`` and
    ``nSamples`` are the market's latest hourly rate and its sample count (None before the first hour).
    """
    latest: dict[int, tuple[str, int]] = {}
    for block in src.blocks():
        for ev in block.events:
            if isinstance(ev, FundingSettled):
                latest[ev.market] = (format_scaled(ev.rate_ppb, 9), ev.samples)
            elif isinstance(ev, FundingPaid):
                who = bytes(ev.account)
                if user is not None and who != user:
                    continue
                m = src.markets[ev.market]
                rate, samples = latest.get(ev.market, (None, None))
                rec = {
                    "time": block.time_ms,
                    "hash": ZERO_HASH,
                    "delta": {
                        "type": "funding",
                        "coin": m.name,
                        "usdc": usd(-ev.amount),
                        "szi": sz(m, ev.size),
                        "fundingRate": rate,
                        "nSamples": samples,
                    },
                }
                if user is None:
                    rec["user"] = addr(who)
                yield rec


# ---------------------------------------------------------------- ledger
def iter_ledger(src: Source, *, user: bytes | None = None) -> Iterator[dict[str, Any]]:
    """Every cash movement that is not a trade's PnL: ``{time, hash, user, delta: {type, usdc, ...}}``.

    Types: ``deposit``, ``withdraw``, ``internalTransfer`` (one record per side, ``usdc``
    signed for that side), ``funding``, ``fee`` (per fill side), ``liquidation``
    (backstop: the margin the fund took over; ``usdc`` negative for the liquidated
    account, positive for the fund), ``insuranceCover`` (the fund paid a deficit),
    ``deficitCover`` (``seed`` policy: a winner's realized profit that covered a deficit),
    ``fundingResidue`` (rounding residue of a funding settlement, to the fund), and
    ``genesisFund`` (the insurance fund's balance at genesis, the first record).
    """
    from clearinghouse.spec.state.keys import FEE_POOL, INSURANCE_FUND

    if src.genesis is not None and src.genesis.insurance_fund and (user is None or user == INSURANCE_FUND):
        rec = {
            "time": src.genesis.time_ms,
            "hash": ZERO_HASH,
            "delta": {"type": "genesisFund", "usdc": usd(src.genesis.insurance_fund)},
        }
        if user is None:
            rec["user"] = addr(INSURANCE_FUND)
        yield rec
    funding_rate: dict[int, tuple[str, int]] = {}  # the latest hourly rate per market (funding is lazy)
    for block in src.blocks():
        tx_ids: dict[int, bytes] = {}
        rows: list[tuple[bytes, str, dict[str, Any]]] = []
        for i, ev in enumerate(block.events):
            h = tx_ids.get(getattr(ev, "tx_index", NO_TX))
            hash_text = "0x" + h.hex() if h is not None else ZERO_HASH
            if isinstance(ev, Receipt):
                tx_ids[ev.tx_index] = bytes(ev.tx_id)
            elif isinstance(ev, Deposited):
                rows.append((bytes(ev.account), hash_text, {"type": "deposit", "usdc": usd(ev.amount)}))
            elif isinstance(ev, Withdrew):
                rows.append(
                    (
                        bytes(ev.account),
                        hash_text,
                        {
                            "type": "withdraw",
                            "usdc": usd(-ev.amount),
                            "nonce": None,
                            "fee": "0.0",
                            "destination": addr(ev.destination),
                        },
                    )
                )
            elif isinstance(ev, Transferred):
                common: dict[str, Any] = {
                    "type": "internalTransfer",
                    "user": addr(ev.source),
                    "destination": addr(ev.destination),
                    "fee": "0.0",
                }
                rows.append((bytes(ev.source), hash_text, dict(common, usdc=usd(-ev.amount))))
                rows.append((bytes(ev.destination), hash_text, dict(common, usdc=usd(ev.amount))))
            elif isinstance(ev, Fill):
                m = src.markets[ev.market]
                tid = (block.height << 20) | i
                for who, fee in ((bytes(ev.taker), ev.taker_fee), (bytes(ev.maker), ev.maker_fee)):
                    if fee:
                        rows.append((who, hash_text, {"type": "fee", "coin": m.name, "usdc": usd(-fee), "tid": tid}))
                        rows.append(
                            (
                                FEE_POOL,
                                hash_text,
                                {"type": "fee", "coin": m.name, "usdc": usd(fee), "tid": tid, "payer": addr(who)},
                            )
                        )
            elif isinstance(ev, FundingPaid):
                m = src.markets[ev.market]
                rows.append(
                    (
                        bytes(ev.account),
                        ZERO_HASH,
                        {
                            "type": "funding",
                            "coin": m.name,
                            "usdc": usd(-ev.amount),
                            "szi": sz(m, ev.size),
                            "fundingRate": None,
                            "nSamples": None,
                            "_market": ev.market,
                        },
                    )
                )
                if ev.swept:
                    rows.append(
                        (
                            INSURANCE_FUND,
                            ZERO_HASH,
                            {"type": "fundingResidue", "coin": m.name, "usdc": usd(ev.swept)},
                        )
                    )
            elif isinstance(ev, FundingSettled):
                funding_rate[ev.market] = (format_scaled(ev.rate_ppb, 9), ev.samples)
            elif isinstance(ev, Backstop):
                positions = [
                    {"coin": src.markets[p.market].name, "szi": sz(src.markets[p.market], p.size)} for p in ev.positions
                ]
                ntl = sum(abs(p.size) * p.mark for p in ev.positions)
                common = {
                    "type": "liquidation",
                    "liquidatedNtlPos": usd(ntl),
                    "accountValue": usd(ev.value),
                    "leverageType": "Cross" if ev.unit == CROSS else "Isolated",
                    "liquidatedPositions": positions,
                    "liquidatedUser": addr(ev.account),
                }
                rows.append((bytes(ev.account), ZERO_HASH, dict(common, usdc=usd(-ev.margin_taken))))
                rows.append((INSURANCE_FUND, ZERO_HASH, dict(common, usdc=usd(ev.margin_taken))))
            elif isinstance(ev, DeficitCover) and ev.covered:
                common = {
                    "type": "deficitCover",
                    "liquidatedUser": addr(ev.underwater),
                    "counterparty": addr(ev.counterparty),
                    "coin": src.markets[ev.market].name,
                }
                rows.append((bytes(ev.counterparty), ZERO_HASH, dict(common, usdc=usd(-ev.covered))))
                rows.append((bytes(ev.underwater), ZERO_HASH, dict(common, usdc=usd(ev.covered))))
            elif isinstance(ev, InsuranceCover) and ev.paid:
                common = {"type": "insuranceCover", "liquidatedUser": addr(ev.account), "deficit": usd(ev.deficit)}
                rows.append((bytes(ev.account), ZERO_HASH, dict(common, usdc=usd(ev.paid))))
                rows.append((INSURANCE_FUND, ZERO_HASH, dict(common, usdc=usd(-ev.paid))))
            elif isinstance(ev, Haircut) and ev.amount:
                common = {"type": "haircut", "payer": addr(ev.account), "deficit": usd(ev.deficit)}
                rows.append((bytes(ev.account), ZERO_HASH, dict(common, usdc=usd(-ev.amount))))
                rows.append((INSURANCE_FUND, ZERO_HASH, dict(common, usdc=usd(ev.amount))))
        for who, hash_text, delta in rows:
            if user is not None and who != user:
                continue
            if delta.get("type") == "funding" and "_market" in delta:
                rate, samples = funding_rate.get(delta.pop("_market"), (None, None))
                delta.update(fundingRate=rate, nSamples=samples)
            rec = {"time": block.time_ms, "hash": hash_text, "delta": delta}
            if user is None:
                rec["user"] = addr(who)
            yield rec


# ---------------------------------------------------------------- liquidations
def iter_liquidations(src: Source, *, names: dict[bytes, str] | None = None) -> Iterator[dict[str, Any]]:
    """Every waterfall event with its evidence (explain's event JSON: raw fields and human companions)."""
    from clearinghouse.tools.explain import (
        WATERFALL_TYPES,
        Legend,
        MarketInfo,
        event_json,
    )

    legend = Legend(markets=[MarketInfo(m.index, m.name, m.sz_decimals) for m in src.markets], names=dict(names or {}))
    for block in src.blocks():
        for i, ev in enumerate(block.events):
            if isinstance(ev, (*WATERFALL_TYPES, PositionTransfer)) or (isinstance(ev, Fill) and ev.liquidation):
                rec = {"height": block.height, "time": block.time_ms, "event_index": i}
                rec.update(event_json(ev, legend))
                yield rec


# ---------------------------------------------------------------- state
def clearinghouse_state(src: Source, user: bytes, height: int | None = None) -> dict[str, Any]:
    """Hyperliquid ``clearinghouseState`` of ``user`` at ``height`` (default: the last block)."""
    from clearinghouse.tools.accounts_view import account_view

    if height is not None and height > src.height and src.kind == "lmdb":
        raise ExportError(f"height {height} is beyond the database's height {src.height}")
    if src.kind == "lmdb" and height is not None and height != src.height:
        raise ExportError(
            f"the database holds the state at height {src.height} only; export --height {height} from the log"
        )
    tracker = Tracker()
    last_time = None
    for block in src.blocks(height):
        for _ in _block_fills(src, block, tracker, user=NOBODY):  # only updates the running sizes and funding
            pass
        last_time = block.time_ms
    if height is not None and src.height < height:
        raise ExportError(f"height {height} is beyond the chain's last block ({src.height})")
    av = account_view(src.view(), user, with_adl=False)
    positions = []
    for p in av.positions:
        m = src.markets[p.market.index]
        key = (user, m.index)
        lev: dict[str, Any] = {"type": "cross" if p.is_cross else "isolated", "value": p.leverage}
        if not p.is_cross:
            lev["rawUsd"] = usd(p.iso_cash)
        from clearinghouse.tools.accounts_view import frac_str, px_str

        positions.append(
            {
                "type": "oneWay",
                "position": {
                    "coin": m.name,
                    "szi": sz(m, p.size),
                    "entryPx": _hl(px_str(p.entry_px, m.sz_decimals, extra=2) or "0"),
                    "positionValue": usd(p.position_value),
                    "unrealizedPnl": usd(p.unrealized_pnl),
                    "returnOnEquity": _hl(frac_str(p.return_on_equity, 6) or "0"),
                    "liquidationPx": _hl(px_str(p.liquidation_px, m.sz_decimals, extra=2) or "0")
                    if p.liquidation_px is not None
                    else None,
                    "leverage": lev,
                    "marginUsed": usd(p.margin_used),
                    "maxLeverage": m.max_leverage,
                    # Lazy funding (protocol §11.6): what accrued since the last size change is not
                    # paid yet; it counts here as it counts in the account value, so sinceChange is it.
                    "cumFunding": {
                        "allTime": usd(tracker.cum_all.get(key, 0) + p.unsettled_funding),
                        "sinceOpen": usd(tracker.cum_open.get(key, 0) + p.unsettled_funding),
                        "sinceChange": usd(tracker.cum_change.get(key, 0) + p.unsettled_funding),
                    },
                },
            }
        )
    return {
        "marginSummary": {
            "accountValue": usd(av.account_value),
            "totalNtlPos": usd(av.total_notional),
            "totalRawUsd": usd(av.cash + sum(p.iso_cash for p in av.positions)),
            "totalMarginUsed": usd(av.margin_used),
        },
        "crossMarginSummary": {
            "accountValue": usd(av.cross_value),
            "totalNtlPos": usd(av.cross_notional),
            "totalRawUsd": usd(av.cash),
            "totalMarginUsed": usd(av.cross_initial),
        },
        "crossMaintenanceMarginUsed": usd(av.cross_maintenance),
        "withdrawable": usd(av.withdrawable),
        "assetPositions": positions,
        "time": last_time,
    }


# ---------------------------------------------------------------- writers
def flatten(rec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in rec.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list):
            out[key] = json.dumps(v, sort_keys=True)
        else:
            out[key] = v
    return out


CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "fills": ("user",) + FILL_FIELDS + tuple(f"liquidation.{f}" for f in LIQUIDATION_FIELDS),
    "funding": (
        "user",
        "time",
        "hash",
        "delta.type",
        "delta.coin",
        "delta.usdc",
        "delta.szi",
        "delta.fundingRate",
        "delta.nSamples",
    ),
    "ledger": (
        "user",
        "time",
        "hash",
        "delta.type",
        "delta.usdc",
        "delta.coin",
        "delta.tid",
        "delta.user",
        "delta.destination",
        "delta.fee",
        "delta.nonce",
        "delta.payer",
        "delta.szi",
        "delta.fundingRate",
        "delta.nSamples",
        "delta.liquidatedUser",
        "delta.liquidatedNtlPos",
        "delta.accountValue",
        "delta.leverageType",
        "delta.liquidatedPositions",
        "delta.deficit",
        "delta.counterparty",
    ),
    "liquidations": ("height", "time", "event_index", "type", "account", "market_name", "event"),
    "state": (
        "coin",
        "szi",
        "entryPx",
        "positionValue",
        "unrealizedPnl",
        "returnOnEquity",
        "liquidationPx",
        "leverage.type",
        "leverage.value",
        "leverage.rawUsd",
        "marginUsed",
        "maxLeverage",
        "cumFunding.allTime",
        "cumFunding.sinceOpen",
        "cumFunding.sinceChange",
        "accountValue",
        "withdrawable",
        "crossMaintenanceMarginUsed",
        "time",
    ),
}
"""Fixed CSV columns per kind (streaming: the header is written before the first row)."""


class Writer:
    """Writes records as JSON Lines or CSV to a stream, one at a time."""

    def __init__(self, out: TextIO, fmt: str, kind: str, columns: tuple[str, ...] | None = None) -> None:
        self.out = out
        self.fmt = fmt
        self.count = 0
        self._csv = None
        if fmt == "csv":
            cols = columns or CSV_COLUMNS.get(kind)
            self._columns = cols
            self._csv = csv.DictWriter(
                out, fieldnames=list(cols) if cols else [], extrasaction="ignore", lineterminator="\n"
            )
            if cols:
                self._csv.writeheader()

    def write(self, rec: dict[str, Any]) -> None:
        self.count += 1
        if self._csv is None:
            self.out.write(json.dumps(rec, separators=(",", ":")) + "\n")
            return
        flat = flatten(rec)
        if "event" in (self._csv.fieldnames or ()):  # liquidations: the whole event as JSON in one column
            flat = {k: rec.get(k) for k in ("height", "time", "event_index", "type", "market_name")}
            flat["account"] = rec.get("account") or rec.get("underwater") or rec.get("taker")
            flat["event"] = json.dumps(rec, sort_keys=True, separators=(",", ":"))
        self._csv.writerow({k: _csv_value(v) for k, v in flat.items()})


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


def state_rows(state: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """clearinghouseState as CSV rows: one per asset position, the account's summary on each."""
    common = {
        "accountValue": state["marginSummary"]["accountValue"],
        "withdrawable": state["withdrawable"],
        "crossMaintenanceMarginUsed": state["crossMaintenanceMarginUsed"],
        "time": state["time"],
    }
    if not state["assetPositions"]:
        yield common
    for ap in state["assetPositions"]:
        yield dict(flatten(ap["position"]), **common)


def run_export(
    kind: str,
    source: str,
    *,
    out: TextIO,
    fmt: str = "jsonl",
    user: bytes | None = None,
    height: int | None = None,
    names: dict[bytes, str] | None = None,
    resolve: Callable[[Source], bytes | None] | None = None,
) -> int:
    """Export ``kind`` from ``source`` to ``out``; return the number of records written."""
    with Source.open(source) as src:
        if resolve is not None:
            user = resolve(src)
        if kind == "state":
            if user is None:
                raise ExportError("export state needs --user ADDRESS_OR_NAME")
            state = clearinghouse_state(src, user, height)
            if fmt == "csv":
                w = Writer(out, "csv", "state")
                for row in state_rows(state):
                    w.write(row)
                return w.count
            out.write(json.dumps(state, separators=(",", ":")) + "\n")
            return 1
        w = Writer(out, fmt, kind)
        records: Iterator[dict[str, Any]]
        if kind == "fills":
            records = iter_fills(src, user=user)
        elif kind == "funding":
            records = iter_funding(src, user=user)
        elif kind == "ledger":
            records = iter_ledger(src, user=user)
        elif kind == "liquidations":
            records = iter_liquidations(src, names=names)
        else:
            raise ExportError(f"unknown export {kind!r}")
        for rec in records:
            w.write(rec)
        return w.count


__all__ = [
    "ExportError",
    "Source",
    "Tracker",
    "iter_fills",
    "iter_funding",
    "iter_ledger",
    "iter_liquidations",
    "clearinghouse_state",
    "run_export",
    "FILL_FIELDS",
    "CSV_COLUMNS",
]
