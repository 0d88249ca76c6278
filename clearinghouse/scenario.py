"""Scenarios: a hand-written TOML description of a chain, compiled into a signed log and run.

The format is documented in ``docs/scenarios.md``. In short::

    name = "..."                 # optional
    accounts = ["alice", "bob"]  # or an [accounts] table: name = "initial deposit (USDC)"

    [chain]      chain_id, start, policy, insurance_fund, bridge, oracles, block_seconds
    [[market]]   name, sz_decimals, max_leverage, initial_price, taker_fee, maker_fee,
                 impact_notional, min_notional
    [[step]]     do = "deposit" | "withdraw" | "transfer" | "order" | "market_order" | "trigger"
                      | "cancel" | "modify" | "leverage" | "isolated_margin" | "oracle"
                      | "advance" | "block" | "expect"

Everything a human writes is in human units (USDC and base-asset decimals,
basis points, seconds) and converted exactly by ``units``; anything not
representable, any unknown key, market or account is an error naming the
step and the key. Accounts are the deterministic, INSECURE test keys of
``Signer.from_name``. Compilation is deterministic: the same file gives the
same log bytes and therefore the same roots.

Display and compile-time code only: nothing here is part of the transition.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import tempfile
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable

from tx import actions as A
from tx.messages import (
    DEFAULT_MARK_BAND_BPS, DEFAULT_ORACLE_FRESH_MS, MAX_MARK_BAND_BPS, MAX_ORACLE_FRESH_MS, MIN_MARK_BAND_BPS, MIN_ORACLE_FRESH_MS, Genesis,
    MarketSpec,
)
from tx.signing import Signer, checksum_address, parse_address

from .cli import EXIT_FAIL, CliError
from .units import (
    UnitError, bps_to_ppm, micro_to_usdc, price_to_units, size_to_lots, to_decimal, to_scaled, usdc_to_micro,
)

DEFAULT_CHAIN_ID = 1337
DEFAULT_START_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z, the demo chain's genesis time."""
DEFAULT_POLICY = "hyperliquid"
DEFAULT_BRIDGE = "bridge"
DEFAULT_ORACLES = ("oracle-1", "oracle-2", "oracle-3")
DEFAULT_BLOCK_MS = 1000
DEFAULT_MARKET_SLIPPAGE_BPS = 500
RESERVED_NAMES = ("insurance_fund", "fee_pool")

TIFS = {"GTC": A.TIF_GTC, "IOC": A.TIF_IOC, "FOK": A.TIF_FOK, "ALO": A.TIF_ALO}
SIDES = {"buy": True, "sell": False}
MODES = {"cross": True, "isolated": False}
TRIGGER_KINDS = {"tp": True, "take_profit": True, "sl": False, "stop_loss": False}

COMMON_STEP_KEYS = ("do", "note")
STEP_KEYS: dict[str, tuple[str, ...]] = {
    "deposit": ("account", "amount", "ref"),
    "withdraw": ("account", "amount", "destination"),
    "transfer": ("account", "to", "amount"),
    "order": ("account", "market", "side", "price", "size", "tif", "reduce_only", "cloid"),
    "market_order": ("account", "market", "side", "size", "slippage_bps", "reduce_only", "cloid"),
    "trigger": ("account", "market", "side", "size", "trigger_price", "kind", "limit_price", "reduce_only", "cloid"),
    "cancel": ("account", "market", "oid", "cloid"),
    "modify": ("account", "market", "oid", "price", "size"),
    "leverage": ("account", "market", "leverage", "mode"),
    "isolated_margin": ("account", "market", "amount"),
    "oracle": ("prices", "external", "publishers"),
    "advance": ("seconds",),
    "block": (),
    "expect": ("account", "market", "cash", "value", "position", "entry_price", "open_orders", "insurance_fund",
               "fee_pool", "mark", "oracle", "event", "where", "count", "within"),
}
TOP_KEYS = ("name", "description", "accounts", "chain", "market", "step")
CHAIN_KEYS = ("chain_id", "start", "policy", "insurance_fund", "bridge", "oracles", "block_seconds", "oracle_fresh_seconds")
MARKET_KEYS = ("name", "sz_decimals", "max_leverage", "initial_price", "taker_fee", "maker_fee", "impact_notional", "min_notional",
               "mark_band_bps")
MARKET_REQUIRED = ("name", "sz_decimals", "max_leverage", "initial_price")


class ScenarioError(CliError):
    """A scenario file that cannot be read, compiled or run; printed as one line ``error: ...``."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message, code)


# ---------------------------------------------------------------- the compiled scenario
@dataclass
class MarketDef:
    index: int
    spec: MarketSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def sz_decimals(self) -> int:
        return self.spec.sz_decimals


@dataclass
class Step:
    """One ``[[step]]``: ``kind`` is its ``do``; the payload depends on the kind."""

    number: int
    kind: str
    note: str
    txs: list[tuple[str, Any]] = field(default_factory=list)
    """(signer name, action) for transaction steps."""
    advance_ms: int = 0
    checks: list["Check"] = field(default_factory=list)


@dataclass
class Scenario:
    path: str
    name: str
    description: str
    chain_id: int
    start_ms: int
    policy: str
    insurance_fund: int
    bridge: str
    oracles: list[str]
    block_ms: int
    markets: list[MarketDef]
    accounts: list[str]
    initial_deposits: dict[str, int]
    steps: list[Step]
    oracle_fresh_ms: int = DEFAULT_ORACLE_FRESH_MS

    def market(self, name: str) -> MarketDef:
        for m in self.markets:
            if m.name == name:
                return m
        raise KeyError(name)

    def genesis(self) -> Genesis:
        return Genesis(
            chain_id=self.chain_id,
            time_ms=self.start_ms,
            bridge=Signer.from_name(self.bridge).address,
            oracle_publishers=sorted(Signer.from_name(n).address for n in self.oracles),
            insurance_fund=self.insurance_fund,
            policy=self.policy,
            markets=[m.spec for m in self.markets],
            oracle_fresh_ms=self.oracle_fresh_ms,
        )

    def names(self) -> dict[bytes, str]:
        """Address -> name for every name the scenario uses (accounts, bridge, oracles, system)."""
        from .explain import SYSTEM_NAMES

        out: dict[bytes, str] = dict(SYSTEM_NAMES)
        for n in [self.bridge, *self.oracles, *self.accounts]:
            out[Signer.from_name(n).address] = n
        return out


# ---------------------------------------------------------------- reading
def load_scenario(path: str) -> Scenario:
    """Read and check a scenario file (every error is a ``ScenarioError`` naming the place)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ScenarioError(f"no such scenario file: {path}") from None
    except IsADirectoryError:
        raise ScenarioError(f"{path} is a directory, not a scenario file") from None
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_scenario(text, path)


def parse_scenario(text: str, path: str = "<scenario>") -> Scenario:
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: invalid TOML: {exc}") from None
    return _Reader(path).scenario(data)


class _Reader:
    """Turns the TOML document into a ``Scenario``; errors carry ``path: where: message``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> ScenarioError:
        return ScenarioError(f"{self.path}: {where}: {message}" if where else f"{self.path}: {message}")

    # -- primitive checks
    def keys(self, table: Any, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise self.fail(where, f"expected a table, got {_type_name(table)}")
        for key in table:
            if key not in allowed:
                hint = ""
                if where and key in TOP_KEYS:
                    hint = f"; a top-level {key!r} must come before the first [table] of the file"
                raise self.fail(where, f"unknown key {key!r} (allowed: {', '.join(allowed) or 'none'}){hint}")
        return table

    def require(self, table: dict[str, Any], key: str, where: str) -> Any:
        if key not in table:
            raise self.fail(where, f"missing required key {key!r}")
        return table[key]

    def string(self, value: Any, where: str, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"{key} must be a string, got {_type_name(value)}")
        return value

    def integer(self, value: Any, where: str, key: str, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"{key} must be an integer, got {_type_name(value)}")
        if lo is not None and value < lo or hi is not None and value > hi:
            bounds = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            raise self.fail(where, f"{key} must be in {bounds}, got {value}")
        return value

    def boolean(self, value: Any, where: str, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"{key} must be true or false, got {_type_name(value)}")
        return value

    def choice(self, value: Any, options: dict[str, Any], where: str, key: str) -> Any:
        if not isinstance(value, str) or value not in options:
            raise self.fail(where, f"{key} must be one of {', '.join(repr(o) for o in options)}, got {value!r}")
        return options[value]

    def unit(self, fn: Callable[..., int], value: Any, where: str, key: str, *args: Any, positive: bool = False, nonneg: bool = False, **kw: Any) -> int:
        try:
            n = fn(value, *args, what=key, **kw)
        except UnitError as exc:
            raise self.fail(where, str(exc)) from None
        if positive and n <= 0:
            raise self.fail(where, f"{key} must be positive, got {value}")
        if nonneg and n < 0:
            raise self.fail(where, f"{key} must not be negative, got {value}")
        if not -(2**63) <= n < 2**64:
            raise self.fail(where, f"{key} {value} is out of the 64-bit range")
        return n

    # -- document
    def scenario(self, data: dict[str, Any]) -> Scenario:
        self.keys(data, TOP_KEYS, "")
        name = self.string(data.get("name", os.path.splitext(os.path.basename(self.path))[0]), "", "name")
        description = self.string(data.get("description", ""), "", "description")
        chain = self.keys(data.get("chain", {}), CHAIN_KEYS, "[chain]")
        chain_id = self.integer(chain.get("chain_id", DEFAULT_CHAIN_ID), "[chain]", "chain_id", 0, 2**64 - 1)
        start_ms = self.start_time(chain.get("start", DEFAULT_START_MS))
        from .transition import SUPPORTED_POLICIES

        policy = self.choice(chain.get("policy", DEFAULT_POLICY), {p: p for p in SUPPORTED_POLICIES}, "[chain]", "policy")
        fund = self.unit(usdc_to_micro, chain.get("insurance_fund", 0), "[chain]", "insurance_fund", nonneg=True)
        bridge = self.name(chain.get("bridge", DEFAULT_BRIDGE), "[chain]", "bridge")
        oracles_raw = chain.get("oracles", list(DEFAULT_ORACLES))
        if not isinstance(oracles_raw, list) or not oracles_raw:
            raise self.fail("[chain]", "oracles must be a non-empty list of names")
        oracles = [self.name(o, "[chain]", "oracles") for o in oracles_raw]
        if len(set(oracles)) != len(oracles):
            raise self.fail("[chain]", "oracles must be distinct names")
        if len(oracles) > 16:
            raise self.fail("[chain]", "at most 16 oracle publishers")
        if bridge in oracles:
            raise self.fail("[chain]", f"{bridge!r} cannot be both the bridge and an oracle")
        block_ms = self.unit(to_scaled, chain.get("block_seconds", 1), "[chain]", "block_seconds", 3, positive=True)
        fresh_ms = self.unit(to_scaled, chain.get("oracle_fresh_seconds", DEFAULT_ORACLE_FRESH_MS // 1000), "[chain]", "oracle_fresh_seconds", 3, positive=True)
        if not MIN_ORACLE_FRESH_MS <= fresh_ms <= MAX_ORACLE_FRESH_MS:
            raise self.fail("[chain]", f"oracle_fresh_seconds must be {MIN_ORACLE_FRESH_MS // 1000}..{MAX_ORACLE_FRESH_MS // 1000}")

        markets_raw = data.get("market", [])
        if not isinstance(markets_raw, list) or not markets_raw:
            raise self.fail("", "at least one [[market]] table is required")
        markets = [self.market(i, m) for i, m in enumerate(markets_raw)]
        names_seen = [m.name for m in markets]
        for n in names_seen:
            if names_seen.count(n) > 1:
                raise self.fail(f"[[market]] {n!r}", "duplicate market name")

        accounts, deposits = self.accounts(data.get("accounts", []), bridge, oracles)
        sc = Scenario(path=self.path, name=name, description=description, chain_id=chain_id, start_ms=start_ms, policy=policy,
                      insurance_fund=fund, bridge=bridge, oracles=oracles, block_ms=block_ms, markets=markets,
                      accounts=accounts, initial_deposits=deposits, steps=[], oracle_fresh_ms=fresh_ms)
        steps_raw = data.get("step", [])
        if not isinstance(steps_raw, list):
            raise self.fail("", "step must be an array of tables ([[step]])")
        sc.steps = [_StepReader(self, sc, i + 1).read(s) for i, s in enumerate(steps_raw)]
        return sc

    def name(self, value: Any, where: str, key: str) -> str:
        n = self.string(value, where, key)
        if not n or n != n.strip():
            raise self.fail(where, f"{key}: names must be non-empty without surrounding spaces, got {n!r}")
        if n.startswith("0x"):
            raise self.fail(where, f"{key}: {n!r} looks like an address; use a name (test key)")
        return n

    def start_time(self, value: Any) -> int:
        where = "[chain]"
        if isinstance(value, bool):
            raise self.fail(where, "start must be an ISO-8601 UTC time or milliseconds since 1970")
        if isinstance(value, int):
            if not 0 <= value < 2**63:
                raise self.fail(where, f"start out of range: {value}")
            return value
        if isinstance(value, str):
            try:
                value = _dt.datetime.fromisoformat(value)
            except ValueError:
                raise self.fail(where, f"start {value!r} is not an ISO-8601 time like \"2026-01-01T00:00:00Z\"") from None
        if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
            value = _dt.datetime(value.year, value.month, value.day)
        if not isinstance(value, _dt.datetime):
            raise self.fail(where, f"start must be an ISO-8601 UTC time or milliseconds, got {_type_name(value)}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        if micros % 1000 or micros < 0:
            raise self.fail(where, "start must be a whole number of milliseconds after 1970")
        return micros // 1000

    def market(self, index: int, raw: Any) -> MarketDef:
        where = f"[[market]] #{index + 1}"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            where = f"[[market]] {raw['name']!r}"
        m = self.keys(raw, MARKET_KEYS, where)
        for key in MARKET_REQUIRED:
            self.require(m, key, where)
        name = self.string(m["name"], where, "name")
        where = f"[[market]] {name!r}"
        if not name or len(name) > 32:
            raise self.fail(where, "market names are 1..32 characters")
        szd = self.integer(m["sz_decimals"], where, "sz_decimals", 0, 6)
        maxlev = self.integer(m["max_leverage"], where, "max_leverage", 1, 100)
        spec = MarketSpec(
            name=name, sz_decimals=szd, max_leverage=maxlev,
            taker_fee_ppm=self.fee(m.get("taker_fee", "4.5"), where, "taker_fee"),
            maker_fee_ppm=self.fee(m.get("maker_fee", "1.5"), where, "maker_fee"),
            impact_notional=self.unit(usdc_to_micro, m.get("impact_notional", "1000"), where, "impact_notional", positive=True),
            min_notional=self.unit(usdc_to_micro, m.get("min_notional", "10"), where, "min_notional", nonneg=True),
            initial_price=self.unit(price_to_units, m["initial_price"], where, "initial_price", szd, positive=True),
            mark_band_bps=self.integer(m.get("mark_band_bps", DEFAULT_MARK_BAND_BPS), where, "mark_band_bps", MIN_MARK_BAND_BPS, MAX_MARK_BAND_BPS),
        )
        return MarketDef(index=index, spec=spec)

    def fee(self, value: Any, where: str, key: str) -> int:
        ppm = self.unit(bps_to_ppm, value, where, f"{key} (bps)", nonneg=True)
        if ppm > 10_000:
            raise self.fail(where, f"{key} must be at most 100 bps, got {value}")
        return ppm

    def accounts(self, raw: Any, bridge: str, oracles: list[str]) -> tuple[list[str], dict[str, int]]:
        where = "accounts"
        deposits: dict[str, int] = {}
        if isinstance(raw, list):
            names = [self.name(n, where, "accounts") for n in raw]
        elif isinstance(raw, dict):
            names = []
            for n, amount in raw.items():
                names.append(self.name(n, "[accounts]", "account name"))
                d = self.unit(usdc_to_micro, amount, "[accounts]", n, nonneg=True)
                if d:
                    deposits[n] = d
        else:
            raise self.fail(where, "accounts must be a list of names or an [accounts] table of name = initial deposit")
        if not names:
            raise self.fail(where, "declare at least one account")
        for n in names:
            if names.count(n) > 1:
                raise self.fail(where, f"duplicate account {n!r}")
            if n in RESERVED_NAMES:
                raise self.fail(where, f"{n!r} is reserved for the system account")
            if n == bridge or n in oracles:
                raise self.fail(where, f"{n!r} is the bridge or an oracle publisher, not a trading account")
        return names, deposits


class _StepReader:
    def __init__(self, reader: _Reader, sc: Scenario, number: int) -> None:
        self.r = reader
        self.sc = sc
        self.number = number
        self.where = f"step {number}"

    def fail(self, message: str) -> ScenarioError:
        return self.r.fail(self.where, message)

    def read(self, raw: Any) -> Step:
        if not isinstance(raw, dict):
            raise self.fail(f"expected a table, got {_type_name(raw)}")
        if "do" not in raw:
            raise self.fail(f"missing 'do' (one of: {', '.join(STEP_KEYS)})")
        kind = raw["do"]
        if not isinstance(kind, str) or kind not in STEP_KEYS:
            raise self.fail(f"unknown do = {kind!r} (one of: {', '.join(STEP_KEYS)})")
        self.where = f"step {self.number} ({kind})"
        self.t = self.r.keys(raw, COMMON_STEP_KEYS + STEP_KEYS[kind], self.where)
        note = self.r.string(raw.get("note", ""), self.where, "note")
        step = Step(number=self.number, kind=kind, note=note)
        getattr(self, f"s_{kind}")(step)
        return step

    # -- field helpers
    def req(self, key: str) -> Any:
        return self.r.require(self.t, key, self.where)

    def account(self, key: str = "account", *, allow_system: bool = False) -> str:
        n = self.r.string(self.req(key), self.where, key)
        if n in self.sc.accounts or (allow_system and n in RESERVED_NAMES):
            return n
        raise self.fail(f"unknown account {n!r} in {key} (declared: {', '.join(self.sc.accounts)})")

    def address(self, key: str) -> bytes:
        """A declared account name or a 0x address (for destinations)."""
        text = self.r.string(self.req(key), self.where, key)
        if text.startswith("0x"):
            try:
                return parse_address(text)
            except ValueError as exc:
                raise self.fail(f"{key}: {exc}") from None
        if text in self.sc.accounts:
            return Signer.from_name(text).address
        raise self.fail(f"unknown account {text!r} in {key} (declared: {', '.join(self.sc.accounts)})")

    def market(self, key: str = "market") -> MarketDef:
        n = self.r.string(self.req(key), self.where, key)
        try:
            return self.sc.market(n)
        except KeyError:
            raise self.fail(f"unknown market {n!r} (markets: {', '.join(m.name for m in self.sc.markets)})") from None

    def usdc(self, key: str, *, positive: bool = True, value: Any = None) -> int:
        return self.r.unit(usdc_to_micro, self.req(key) if value is None else value, self.where, key, positive=positive)

    def price(self, m: MarketDef, key: str, value: Any = None) -> int:
        return self.r.unit(price_to_units, self.req(key) if value is None else value, self.where, key, m.sz_decimals, positive=True)

    def size(self, m: MarketDef, key: str = "size", *, positive: bool = True, value: Any = None) -> int:
        return self.r.unit(size_to_lots, self.req(key) if value is None else value, self.where, key, m.sz_decimals,
                           positive=positive, asset=m.name)

    def opt_bool(self, key: str, default: bool) -> bool:
        return self.r.boolean(self.t[key], self.where, key) if key in self.t else default

    def opt_int(self, key: str, default: int, lo: int, hi: int) -> int:
        return self.r.integer(self.t[key], self.where, key, lo, hi) if key in self.t else default

    def side(self) -> bool:
        return self.r.choice(self.req("side"), SIDES, self.where, "side")

    # -- transaction steps
    def s_deposit(self, st: Step) -> None:
        name = self.account()
        ref = self.opt_int("ref", 0, 0, 2**64 - 1)
        st.txs.append((self.sc.bridge, ("deposit", Signer.from_name(name).address, self.usdc("amount"), ref)))

    def s_withdraw(self, st: Step) -> None:
        name = self.account()
        dest = self.address("destination") if "destination" in self.t else Signer.from_name(name).address
        st.txs.append((name, A.Withdraw(amount=self.usdc("amount"), destination=dest)))

    def s_transfer(self, st: Step) -> None:
        name = self.account()
        st.txs.append((name, A.Transfer(to=self.address("to"), amount=self.usdc("amount"))))

    def s_order(self, st: Step) -> None:
        name, m = self.account(), self.market()
        tif = self.r.choice(self.t.get("tif", "GTC"), TIFS, self.where, "tif")
        st.txs.append((name, A.PlaceOrder(
            market=m.index, is_buy=self.side(), price=self.price(m, "price"), size=self.size(m), tif=tif,
            reduce_only=self.opt_bool("reduce_only", False), cloid=self.opt_int("cloid", 0, 0, 2**64 - 1),
        )))

    def s_market_order(self, st: Step) -> None:
        name, m = self.account(), self.market()
        st.txs.append((name, A.MarketOrder(
            market=m.index, is_buy=self.side(), size=self.size(m),
            slippage_bps=self.opt_int("slippage_bps", DEFAULT_MARKET_SLIPPAGE_BPS, 0, 5000),
            reduce_only=self.opt_bool("reduce_only", False), cloid=self.opt_int("cloid", 0, 0, 2**64 - 1),
        )))

    def s_trigger(self, st: Step) -> None:
        name, m = self.account(), self.market()
        is_tp = self.r.choice(self.req("kind"), TRIGGER_KINDS, self.where, "kind")
        limit = self.price(m, "limit_price") if "limit_price" in self.t else 0
        st.txs.append((name, A.TriggerOrder(
            market=m.index, is_buy=self.side(), size=self.size(m), trigger_price=self.price(m, "trigger_price"),
            is_take_profit=is_tp, limit_price=limit, reduce_only=self.opt_bool("reduce_only", True),
            cloid=self.opt_int("cloid", 0, 0, 2**64 - 1),
        )))

    def s_cancel(self, st: Step) -> None:
        name, m = self.account(), self.market()
        if ("oid" in self.t) == ("cloid" in self.t):
            raise self.fail("give exactly one of oid or cloid")
        if "oid" in self.t:
            st.txs.append((name, A.Cancel(market=m.index, oid=self.opt_int("oid", 0, 0, 2**64 - 1))))
        else:
            st.txs.append((name, A.CancelByCloid(market=m.index, cloid=self.opt_int("cloid", 0, 1, 2**64 - 1))))

    def s_modify(self, st: Step) -> None:
        name, m = self.account(), self.market()
        oid = self.r.integer(self.req("oid"), self.where, "oid", 0, 2**64 - 1)
        st.txs.append((name, A.Modify(market=m.index, oid=oid, price=self.price(m, "price"), size=self.size(m))))

    def s_leverage(self, st: Step) -> None:
        name, m = self.account(), self.market()
        lev = self.r.integer(self.req("leverage"), self.where, "leverage", 1, 1000)
        is_cross = self.r.choice(self.t.get("mode", "cross"), MODES, self.where, "mode")
        st.txs.append((name, A.UpdateLeverage(market=m.index, leverage=lev, is_cross=is_cross)))

    def s_isolated_margin(self, st: Step) -> None:
        name, m = self.account(), self.market()
        delta = self.usdc("amount", positive=False)
        if delta == 0:
            raise self.fail("amount must not be zero (positive adds margin, negative removes it)")
        if not -(2**63) <= delta < 2**63:
            raise self.fail("amount out of range")
        st.txs.append((name, A.UpdateIsolatedMargin(market=m.index, delta=delta)))

    def s_oracle(self, st: Step) -> None:
        prices = self.req("prices")
        if not isinstance(prices, dict) or not prices:
            raise self.fail("prices must be a table of market = price (or a list of prices, one per publisher)")
        publishers = self.sc.oracles
        if "publishers" in self.t:
            raw = self.t["publishers"]
            if not isinstance(raw, list) or not raw:
                raise self.fail("publishers must be a non-empty list of oracle names")
            for p in raw:
                if p not in self.sc.oracles:
                    raise self.fail(f"unknown oracle publisher {p!r} (oracles: {', '.join(self.sc.oracles)})")
            if len(set(raw)) != len(raw):
                raise self.fail("publishers must be distinct")
            publishers = list(raw)
        external = self.t.get("external", {})
        if not isinstance(external, dict):
            raise self.fail("external must be a table of market = external perp price")
        per_pub: dict[str, dict[int, list[int]]] = {p: {} for p in publishers}
        for key in external:
            if key not in prices:
                raise self.fail(f"external price for {key!r} without an oracle price for it")
        for mname, value in prices.items():
            try:
                m = self.sc.market(mname)
            except KeyError:
                raise self.fail(f"unknown market {mname!r} in prices (markets: {', '.join(x.name for x in self.sc.markets)})") from None
            oracle = self.per_publisher(m, value, f"prices.{mname}", publishers)
            ext = self.per_publisher(m, external[mname], f"external.{mname}", publishers) if mname in external else [0] * len(publishers)
            for p, o, x in zip(publishers, oracle, ext):
                per_pub[p][m.index] = [o, x]
        for p in publishers:
            items = [A.OraclePrice(market=i, oracle_price=o, external_price=x) for i, (o, x) in sorted(per_pub[p].items())]
            st.txs.append((p, A.OracleUpdate(prices=items)))

    def per_publisher(self, m: MarketDef, value: Any, key: str, publishers: list[str]) -> list[int]:
        if isinstance(value, list):
            if len(value) != len(publishers):
                raise self.fail(f"{key} lists {len(value)} prices for {len(publishers)} publishers ({', '.join(publishers)})")
            return [self.price(m, key, v) for v in value]
        return [self.price(m, key, value)] * len(publishers)

    # -- control steps
    def s_advance(self, st: Step) -> None:
        st.advance_ms = self.r.unit(to_scaled, self.req("seconds"), self.where, "seconds", 3, nonneg=True)

    def s_block(self, st: Step) -> None:
        pass

    def s_expect(self, st: Step) -> None:
        t = self.t
        checks: list[Check] = []
        market = self.market() if "market" in t else None
        if "account" in t:
            name = self.account(allow_system=True)
            addr = _address_of(name)
            if "cash" in t:
                checks.append(AccountCheck(name, addr, "cash", self.usdc("cash", positive=False)))
            if "value" in t:
                checks.append(AccountCheck(name, addr, "value", self.usdc("value", positive=False)))
            if "open_orders" in t:
                checks.append(AccountCheck(name, addr, "open_orders", self.r.integer(t["open_orders"], self.where, "open_orders", 0)))
            if "position" in t:
                pos = t["position"]
                if isinstance(pos, dict):
                    if market is not None:
                        raise self.fail("give position either as a table of market = size or with market =, not both")
                    for mname, v in pos.items():
                        try:
                            m = self.sc.market(mname)
                        except KeyError:
                            raise self.fail(f"unknown market {mname!r} in position") from None
                        checks.append(PositionCheck(name, addr, m, self.size(m, f"position.{mname}", positive=False, value=v)))
                else:
                    if market is None:
                        raise self.fail("position needs market = \"...\" (or a table: position = { BTC = \"0.3\" })")
                    checks.append(PositionCheck(name, addr, market, self.size(market, "position", positive=False)))
            if "entry_price" in t:
                if market is None:
                    raise self.fail("entry_price needs market = \"...\"")
                try:
                    expected = Fraction(to_decimal(t["entry_price"], "entry_price"))
                except UnitError as exc:
                    raise self.fail(str(exc)) from None
                checks.append(EntryCheck(name, addr, market, expected))
        else:
            for key in ("cash", "value", "open_orders", "position", "entry_price"):
                if key in t:
                    raise self.fail(f"{key} needs account = \"...\"")
        for key in ("insurance_fund", "fee_pool"):
            if key in t:
                checks.append(AccountCheck(key, _address_of(key), "cash", self.usdc(key, positive=False)))
        for key in ("mark", "oracle"):
            if key in t:
                table = t[key]
                if not isinstance(table, dict) or not table:
                    raise self.fail(f"{key} must be a table of market = price")
                for mname, v in table.items():
                    try:
                        m = self.sc.market(mname)
                    except KeyError:
                        raise self.fail(f"unknown market {mname!r} in {key}") from None
                    checks.append(PriceCheck(m, key, self.price(m, f"{key}.{mname}", v)))
        if "event" in t:
            checks.append(self.event_check())
        else:
            for key in ("where", "count", "within"):
                if key in t:
                    raise self.fail(f"{key} needs event = \"...\"")
        if market is not None and not any(isinstance(c, (PositionCheck, EntryCheck)) for c in checks):
            raise self.fail("market is only used with position or entry_price")
        if not checks:
            raise self.fail("nothing to check: give account with cash/value/position/..., insurance_fund, fee_pool, mark, oracle or event")
        st.checks = checks

    def event_check(self) -> "EventCheck":
        from .event_types import EVENT_CLASSES

        by_name = {c.__name__: c for c in EVENT_CLASSES}
        ev = self.r.string(self.t["event"], self.where, "event")
        if ev not in by_name:
            raise self.fail(f"unknown event type {ev!r} (known: {', '.join(sorted(by_name))})")
        cls = by_name[ev]
        fields = cls.__struct_fields__
        where = self.t.get("where", {})
        if not isinstance(where, dict):
            raise self.fail("where must be a table of field = value")
        conds: dict[str, Any] = {}
        for key, value in where.items():
            if key not in fields:
                raise self.fail(f"event {ev} has no field {key!r} (fields: {', '.join(fields)})")
            conds[key] = self.condition(key, value)
        count = self.r.integer(self.t["count"], self.where, "count", 0) if "count" in self.t else None
        within = self.r.choice(self.t.get("within", "block"), {"block": "block", "scenario": "scenario"}, self.where, "within")
        return EventCheck(ev, conds, count, within, self.sc)

    def condition(self, key: str, value: Any) -> Any:
        """Normalize a where-value: names become addresses, market names indexes; numbers stay human (Decimal)."""
        from .explain import MARKET_FIELDS
        from .waterfall_events import CROSS

        if isinstance(value, (list, dict)):
            raise self.fail(f"where.{key}: only single values can be compared")
        if isinstance(value, bool):
            return value
        if key in MARKET_FIELDS:
            if isinstance(value, str):
                if value == "cross":
                    return CROSS
                try:
                    return self.sc.market(value).index
                except KeyError:
                    raise self.fail(f"where.{key}: unknown market {value!r}") from None
            return self.r.integer(value, self.where, f"where.{key}", 0)
        if isinstance(value, str) and (value in self.sc.accounts or value in RESERVED_NAMES or value == self.sc.bridge or value in self.sc.oracles):
            return _Addr(_address_of(value), value)
        if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
            try:
                return _Addr(parse_address(value), value)
            except ValueError as exc:
                raise self.fail(f"where.{key}: {exc}") from None
        if isinstance(value, (int, Decimal)):
            return to_decimal(value)
        if isinstance(value, str):
            try:
                return to_decimal(value)
            except UnitError:
                return value  # a plain string field (kind, reason, method, code, ...)
        raise self.fail(f"where.{key}: unsupported value {value!r}")


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (int, Decimal)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return type(value).__name__


def _address_of(name: str) -> bytes:
    from .keys import FEE_POOL, INSURANCE_FUND

    if name == "insurance_fund":
        return INSURANCE_FUND
    if name == "fee_pool":
        return FEE_POOL
    return Signer.from_name(name).address


@dataclass(frozen=True)
class _Addr:
    addr: bytes
    label: str


# ---------------------------------------------------------------- expectations
class Check:
    def evaluate(self, run: "ScenarioRun") -> str | None:  # pragma: no cover - interface
        """None if it holds, else what was found instead."""
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


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

    def evaluate(self, run: "ScenarioRun") -> str | None:
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

    def evaluate(self, run: "ScenarioRun") -> str | None:
        from .keys import position_key

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

    def evaluate(self, run: "ScenarioRun") -> str | None:
        from .keys import position_key

        pos = run.view().get(position_key(self.market.index, self.addr))
        if pos is None or pos.size == 0:
            return f"{self.name} has no {self.market.name} position (expected entry price {_frac_text(self.expected)})"
        actual = Fraction(abs(pos.cost), abs(pos.size)) / 10 ** (6 - self.market.sz_decimals)
        if actual == self.expected:
            return None
        return f"{self.name} {self.market.name} entry price is {_frac_text(actual)}, expected {_frac_text(self.expected)}"


@dataclass
class PriceCheck(Check):
    market: MarketDef
    what: str  # mark | oracle
    expected: int

    def describe(self) -> str:
        return f"{self.market.name} {self.what} price = {_price(self.market, self.expected)}"

    def evaluate(self, run: "ScenarioRun") -> str | None:
        from .keys import market_state_key

        ms = run.view().get(market_state_key(self.market.index))
        actual = ms.mark_price if self.what == "mark" else ms.oracle_price
        if actual == self.expected:
            return None
        return f"{self.market.name} {self.what} price is {_price(self.market, actual)}, expected {_price(self.market, self.expected)}"


@dataclass
class EventCheck(Check):
    event: str
    conds: dict[str, Any]
    count: int | None
    within: str
    sc: Scenario

    def describe(self) -> str:
        where = ", ".join(f"{k} = {_cond_text(v)}" for k, v in self.conds.items())
        n = "at least one" if self.count is None else f"exactly {self.count}"
        scope = "in the last block" if self.within == "block" else "so far"
        return f"{n} {self.event} event{' with ' + where if where else ''} {scope}"

    def matches(self, event: Any) -> bool:
        if type(event).__name__ != self.event:
            return False
        market = getattr(event, "market", None)
        for key, want in self.conds.items():
            got = getattr(event, key)
            if not _field_equal(key, got, want, market, self.sc):
                return False
        return True

    def evaluate(self, run: "ScenarioRun") -> str | None:
        if self.within == "block":
            events = run.blocks[-1].events if run.blocks else []
        else:
            events = [e for b in run.blocks for e in b.events]
        n = sum(1 for e in events if self.matches(e))
        if (self.count is None and n >= 1) or n == self.count:
            return None
        same_type = sum(1 for e in events if type(e).__name__ == self.event)
        return f"expected {self.describe()}, found {n} ({same_type} {self.event} event(s) in scope)"


def _field_equal(key: str, got: Any, want: Any, market: Any, sc: Scenario) -> bool:
    from .explain import PRICE_FIELDS, SIZE_FIELDS, USDC_FIELDS

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
    from .units import lots_to_size

    return f"{lots_to_size(lots, m.sz_decimals)} {m.name}"


def _price(m: MarketDef, units: int) -> str:
    from .units import units_to_price

    return units_to_price(units, m.sz_decimals)


def _frac_text(f: Fraction) -> str:
    from .explain import exact_or_approx

    return exact_or_approx(f)


# ---------------------------------------------------------------- running
@dataclass
class BlockRecord:
    height: int
    time_ms: int
    events: list[Any]
    steps: list[int]
    notes: list[str]


@dataclass
class ExpectResult:
    step: int
    note: str
    height: int
    check: str
    ok: bool
    message: str


class ScenarioRun:
    """Compiles a scenario into blocks on a producer (writing a log) and evaluates its expectations.

    Blocks: the open block collects the transactions of consecutive steps;
    ``block`` produces it (even empty), ``advance`` produces it if it has
    transactions and puts the next block ``seconds`` later (consecutive
    advances add up), ``expect`` produces it if it has transactions and then
    checks. Without ``advance`` blocks are ``block_seconds`` apart.
    Nonces come from each wallet: the block time in ms, then +1 per
    transaction of the same signer.
    """

    def __init__(self, scenario: Scenario, log_path: str) -> None:
        from .producer import Producer

        self.scenario = scenario
        self.log_path = log_path
        self.producer = Producer(scenario.genesis(), log_path, overwrite=True)
        self.wallets: dict[str, Any] = {}
        self.pending: list[bytes] = []
        self.pending_steps: list[int] = []
        self.pending_notes: list[str] = []
        self.last_ms = scenario.start_ms
        self.gap_ms = scenario.block_ms
        self.advanced = False
        self.blocks: list[BlockRecord] = []
        self.expects: list[ExpectResult] = []
        self._deposit_ref = 0

    # -- state
    def view(self) -> Any:
        return self.producer.engine.view()

    def open_time(self) -> int:
        return self.last_ms + self.gap_ms

    def wallet(self, name: str) -> Any:
        w = self.wallets.get(name)
        if w is None:
            w = self.wallets[name] = self.producer.wallet(name)
        return w

    # -- blocks
    def add(self, signer: str, action: Any) -> None:
        if isinstance(action, tuple) and action[0] == "deposit":
            _, to, amount, ref = action
            if ref == 0:
                self._deposit_ref += 1
                ref = self._deposit_ref
            action = A.Deposit(to=to, amount=amount, ref=ref)
        self.pending.append(self.wallet(signer).sign(action, self.open_time()))

    def produce(self) -> BlockRecord:
        t = self.open_time()
        executed = self.producer.block(self.pending, time_ms=t)
        rec = BlockRecord(height=executed.height, time_ms=t, events=list(executed.events), steps=self.pending_steps, notes=self.pending_notes)
        self.blocks.append(rec)
        self.pending, self.pending_steps, self.pending_notes = [], [], []
        self.last_ms = t
        self.gap_ms = self.scenario.block_ms
        self.advanced = False
        return rec

    def run(self) -> "ScenarioRun":
        sc = self.scenario
        try:
            if sc.initial_deposits:
                for name in sc.accounts:
                    if name in sc.initial_deposits:
                        self.add(sc.bridge, ("deposit", Signer.from_name(name).address, sc.initial_deposits[name], 0))
                self.pending_notes.append("initial deposits ([accounts])")
                self.produce()
            for step in sc.steps:
                self.step(step)
            if self.pending:
                self.produce()
        finally:
            self.producer.close()
        return self

    def step(self, step: Step) -> None:
        if step.kind == "block":
            if step.note:
                self.pending_notes.append(step.note)
            self.pending_steps.append(step.number)
            self.produce()
        elif step.kind == "advance":
            if self.pending:
                self.produce()
            self.gap_ms = (self.gap_ms if self.advanced else 0) + step.advance_ms
            self.advanced = True
            if step.note:
                self.pending_notes.append(step.note)
        elif step.kind == "expect":
            if self.pending:
                self.produce()
            height = self.producer.engine.height
            for check in step.checks:
                failure = check.evaluate(self)
                self.expects.append(ExpectResult(step=step.number, note=step.note, height=height, check=check.describe(),
                                                 ok=failure is None, message=failure or ""))
        else:
            for signer, action in step.txs:
                self.add(signer, action)
            self.pending_steps.append(step.number)
            if step.note:
                self.pending_notes.append(step.note)

    @property
    def failed_expects(self) -> list[ExpectResult]:
        return [e for e in self.expects if not e.ok]


def run_scenario(scenario: Scenario, log_path: str) -> ScenarioRun:
    """Compile and run ``scenario``, writing its log to ``log_path`` (overwritten)."""
    return ScenarioRun(scenario, log_path).run()


# ---------------------------------------------------------------- reports
def account_state(view: Any, addr: bytes, sc: Scenario | None = None, legend: Any = None) -> dict[str, Any]:
    """An account's numbers: cash, total value (cross + isolated), positions with entry and mark."""
    from .accounts import get_account
    from .keys import market_spec_key, market_state_key, position_key
    from .margin import cross_health

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
        iso_value = pos.iso_cash + pos.size * mark
        if not pos.is_cross:
            value += iso_value
        from .explain import exact_or_approx
        from .units import lots_to_size, units_to_price

        entry = Fraction(abs(pos.cost), abs(pos.size)) / 10 ** (6 - spec.sz_decimals)
        positions.append({
            "market": market, "market_name": spec.name,
            "size": pos.size, "size_base": lots_to_size(pos.size, spec.sz_decimals),
            "cost": pos.cost, "entry_price_usdc": exact_or_approx(entry).replace(",", ""),
            "mark": mark, "mark_usdc": units_to_price(mark, spec.sz_decimals),
            "unrealized_pnl": upnl, "unrealized_pnl_usdc": micro_to_usdc(upnl),
            "leverage": pos.leverage, "mode": "cross" if pos.is_cross else "isolated",
            "isolated_cash": pos.iso_cash, "isolated_cash_usdc": micro_to_usdc(pos.iso_cash),
            "isolated_value": None if pos.is_cross else iso_value,
            "isolated_value_usdc": None if pos.is_cross else micro_to_usdc(iso_value),
        })
    return {
        "address": checksum_address(addr),
        "name": (sc.names().get(addr) if sc is not None else None),
        "cash": acct.cash, "cash_usdc": micro_to_usdc(acct.cash),
        "value": value, "value_usdc": micro_to_usdc(value),
        "cross_value": health.value, "cross_maintenance_margin": health.maintenance,
        "open_orders": acct.open_orders,
        "positions": positions,
    }


def _summary(run: ScenarioRun) -> dict[str, int]:
    counts = {"blocks": len(run.blocks), "txs": 0, "rejected": 0, "fills": 0, "liquidations": 0, "market_liquidations": 0,
              "insurance_covers": 0, "backstops": 0, "adl_queues": 0, "adl_steps": 0, "adl_fills": 0, "deficit_covers": 0,
              "adl_shortfalls": 0, "funding_payments": 0}
    names = {"LiquidationTriggered": "liquidations", "MarketLiquidation": "market_liquidations", "InsuranceCover": "insurance_covers",
             "Backstop": "backstops", "AdlQueue": "adl_queues", "AdlStep": "adl_steps", "DeficitCover": "deficit_covers",
             "AdlShortfall": "adl_shortfalls"}
    for b in run.blocks:
        for e in b.events:
            n = type(e).__name__
            if n == "Receipt":
                counts["txs"] += 1
                counts["rejected"] += 0 if e.ok else 1
            elif n == "Fill":
                counts["fills"] += 1
                if getattr(e, "kind", "") == "adl":
                    counts["adl_fills"] += 1
            elif n == "FundingPaid" and getattr(e, "amount", 0):
                counts["funding_payments"] += 1
            elif n in names:
                counts[names[n]] += 1
    return counts


def scenario_report(run: ScenarioRun, *, log: str | None) -> dict[str, Any]:
    """The machine-readable result of a run (``scenario run --json``)."""
    from .explain import Legend, event_json
    from .units import lots_to_size, units_to_price

    sc = run.scenario
    view = run.view()
    legend = Legend.from_view(view, sc.names())
    accounts = {}
    for name in [*sc.accounts, "insurance_fund", "fee_pool"]:
        accounts[name] = account_state(view, _address_of(name), sc)
    prices = {}
    from .keys import market_state_key

    for m in sc.markets:
        ms = view.get(market_state_key(m.index))
        prices[m.name] = {"oracle": ms.oracle_price, "oracle_usdc": units_to_price(ms.oracle_price, m.sz_decimals),
                          "mark": ms.mark_price, "mark_usdc": units_to_price(ms.mark_price, m.sz_decimals),
                          "open_interest": ms.open_interest, "open_interest_base": lots_to_size(ms.open_interest, m.sz_decimals)}
    return {
        "scenario": sc.name,
        "file": os.path.abspath(sc.path) if os.path.exists(sc.path) else sc.path,
        "policy": sc.policy,
        "chain_id": sc.chain_id,
        "log": log,
        "height": run.producer.engine.height,
        "state_root": run.producer.engine.store.root.hex(),
        "markets": [{"index": m.index, "name": m.name, "sz_decimals": m.sz_decimals} for m in sc.markets],
        "blocks": [{"height": b.height, "time_ms": b.time_ms, "steps": b.steps, "notes": b.notes,
                    "events": [event_json(e, legend) for e in b.events]} for b in run.blocks],
        "accounts": accounts,
        "prices": prices,
        "summary": _summary(run),
        "expects": [vars(e) for e in run.expects],
        "ok": not run.failed_expects,
    }


def render_run(con: Any, run: ScenarioRun, *, log: str | None) -> None:
    """The readable report: events block by block, final accounts, summary, expectations."""
    from rich.markup import escape

    from .events import NO_TX
    from .explain import Legend, event_text, iso_time

    sc = run.scenario
    view = run.view()
    legend = Legend.from_view(view, sc.names())
    con.print(f"[bold]Scenario {escape(sc.name)}[/] ({escape(sc.path)})")
    if sc.description:
        con.print(f"  {escape(sc.description)}")
    mk = ", ".join(f"{m.name} (lot {_lots(m, 1)}, price unit {_price(m, 1)} USDC, max {m.spec.max_leverage}x)" for m in sc.markets)
    con.print(f"  policy {sc.policy}, chain {sc.chain_id}, insurance fund {micro_to_usdc(sc.insurance_fund, grouping=True)} USDC; markets {escape(mk)}")
    if log:
        con.print(f"  log {escape(log)}")
    for b in run.blocks:
        title = f"\n[bold cyan]Block {b.height}[/]  {iso_time(b.time_ms)}"
        if b.steps:
            title += f"  steps {', '.join(map(str, b.steps))}"
        con.print(title)
        for note in b.notes:
            con.print(f"  [italic]# {escape(note)}[/]")
        in_tx = True
        for e in b.events:
            name = type(e).__name__
            tx_index = getattr(e, "tx_index", NO_TX)
            if in_tx and (tx_index == NO_TX or not hasattr(e, "tx_index")) and name != "Receipt":
                in_tx = False
                con.print("  [dim]end of block:[/]")
            lines = event_text(e, legend)
            style = _style(e)
            indent = "  " if name == "Receipt" or not in_tx else "    "
            for i, line in enumerate(lines):
                text = escape(line)
                con.print(f"{indent}[{style}]{text}[/]" if style and i == 0 else f"{indent}{text}")
    con.print(f"\n[bold]Final state[/] at height {run.producer.engine.height}, state root {run.producer.engine.store.root.hex()}")
    for name in [*sc.accounts, "insurance_fund", "fee_pool"]:
        addr = _address_of(name)
        st = account_state(view, addr, sc)
        con.print(f"  [bold]{escape(legend.who_full(addr))}[/]")
        con.print(f"    cash {micro_to_usdc(st['cash'], grouping=True)} USDC, value {micro_to_usdc(st['value'], grouping=True)} USDC, "
                  f"open orders {st['open_orders']}")
        for p in st["positions"]:
            side = "long" if p["size"] > 0 else "short"
            iso = f", isolated value {micro_to_usdc(p['isolated_value'], grouping=True)} USDC" if p["mode"] == "isolated" else ""
            m = sc.markets[p["market"]]
            con.print(f"    {p['market_name']} {side} {_lots(m, abs(p['size']))} at entry {legend.entry(p['market'], p['cost'], p['size'])}, "
                      f"mark {legend.price(p['market'], p['mark'])}, unrealized PnL {legend.usdc(p['unrealized_pnl'], signed=True)} USDC, "
                      f"{p['leverage']}x {p['mode']}{iso}")
    s = _summary(run)
    con.print(f"Summary: {s['blocks']} blocks, {s['txs']} transactions ({s['rejected']} rejected), {s['fills']} fills, "
              f"{s['liquidations']} liquidations, {s['backstops']} backstops, {s['adl_steps']} ADL steps ({s['adl_fills']} ADL fills), "
              f"{s['deficit_covers']} deficit covers, {s['funding_payments']} funding payments")
    if run.expects:
        passed = sum(1 for e in run.expects if e.ok)
        con.print(f"Expectations: {passed} passed, {len(run.expects) - passed} failed")
        for e in run.expects:
            if e.ok:
                con.print(f"  [green]ok[/]   step {e.step}: {escape(e.check)}")
            else:
                con.print(f"  [bold red]FAIL[/] step {e.step} (height {e.height}): {escape(e.message)}")


def _style(e: Any) -> str:
    name = type(e).__name__
    if name == "Receipt":
        return "" if e.ok else "red"
    if name in ("LiquidationTriggered", "Backstop", "AdlQueue", "AdlStep", "DeficitCover", "AdlShortfall"):
        return "bold magenta"
    if name in ("MarketLiquidation", "InsuranceCover"):
        return "magenta"
    if name == "Fill":
        return "green" if getattr(e, "kind", "trade") == "trade" else "magenta"
    return ""


# ---------------------------------------------------------------- CLI
def cli_command(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Print this module's ``CliError``s as ``error: ...`` here.

    ``cli.main`` catches ``CliError`` too, but under ``python -m clearinghouse.cli``
    the running module is ``__main__``, whose ``CliError`` is a different class
    from the one imported here; handling our own errors keeps the one-line
    message and exit code either way.
    """
    import functools
    import sys

    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except CliError as exc:
            from .tools.console import report_error

            as_json = bool(getattr(args, "json", False)) and not getattr(exc, "json_printed", False)
            return report_error(f"error: {exc}", code=getattr(exc, "code", "BAD_INPUT"), message=str(exc),
                                exit_code=exc.exit_code, as_json=as_json)

    return wrapper


def _expect_failure_error(run: ScenarioRun) -> CliError:
    first = run.failed_expects[0]
    more = len(run.failed_expects) - 1
    tail = f" (and {more} more failed expectation{'s' if more > 1 else ''})" if more else ""
    return CliError(f"expectation failed at step {first.step} (height {first.height}): {first.message}{tail}", EXIT_FAIL)


def _run_to(args: argparse.Namespace, log_path: str | None) -> tuple[ScenarioRun, str | None, str | None]:
    """Run the scenario, writing the log to ``log_path`` or a temp dir (returned for cleanup)."""
    sc = load_scenario(args.file)
    tmp = None
    if log_path is None:
        tmp = tempfile.mkdtemp(prefix="clearinghouse-scenario-")
        path = os.path.join(tmp, "scenario.log")
    else:
        path = os.path.abspath(log_path)
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent):
            raise ScenarioError(f"cannot write the log: no such directory {parent}")
        if os.path.isdir(path):
            raise ScenarioError(f"cannot write the log: {path} is a directory")
    try:
        run = run_scenario(sc, path)
    except BaseException:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return run, (path if tmp is None else None), tmp


def cmd_scenario_run(args: argparse.Namespace) -> int:
    from .cli import EXIT_OK, _console, _print_json

    run, log, tmp = _run_to(args, args.log)
    try:
        if args.json:
            _print_json(scenario_report(run, log=log))
        else:
            render_run(_console(), run, log=log)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if run.failed_expects:
        err = _expect_failure_error(run)
        err.json_printed = bool(args.json)  # the JSON report above already says what failed
        raise err
    return EXIT_OK


def cmd_scenario_compile(args: argparse.Namespace) -> int:
    from .cli import EXIT_OK, _console, _print_json

    run, log, _tmp = _run_to(args, args.log)
    info = {"scenario": run.scenario.name, "log": log, "height": run.producer.engine.height,
            "state_root": run.producer.engine.store.root.hex(), "blocks": len(run.blocks),
            "expects_passed": sum(1 for e in run.expects if e.ok), "expects_failed": len(run.failed_expects)}
    if args.json:
        _print_json(info)
    else:
        _console().print(f"wrote {log}: {info['blocks']} blocks, height {info['height']}, state root {info['state_root']}")
    if run.failed_expects:
        err = _expect_failure_error(run)
        err.json_printed = bool(args.json)  # the JSON report above already says what failed
        raise err
    return EXIT_OK


def add_scenario_command(sub: Any) -> None:
    p = sub.add_parser("scenario", help="compile and run a TOML scenario (docs/scenarios.md)")
    ssub = p.add_subparsers(dest="scenario_command", required=True, metavar="SUBCOMMAND")
    r = ssub.add_parser("run", help="compile, run and show a scenario's events and final accounts")
    r.add_argument("file", metavar="FILE", help="the scenario TOML file (docs/scenarios.md)")
    r.add_argument("--json", action="store_true", help="print a machine-readable result")
    r.add_argument("--log", default=None, metavar="OUT", help="also keep the signed log at OUT (overwritten)")
    r.set_defaults(func=cli_command(cmd_scenario_run))
    c = ssub.add_parser("compile", help="compile a scenario into a signed log (check it with `clearinghouse verify`)")
    c.add_argument("file", metavar="FILE", help="the scenario TOML file (docs/scenarios.md)")
    c.add_argument("--log", required=True, metavar="OUT", help="where to write the log (overwritten)")
    c.add_argument("--json", action="store_true", help="print the result (or the error) as JSON")
    c.set_defaults(func=cli_command(cmd_scenario_compile))
