"""Reading a scenario file: TOML in human units -> a ``Scenario`` (docs/scenarios.md); every error names
the step and the key."""

from __future__ import annotations

import datetime as _dt
import os
import tomllib
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from clearinghouse.tools.scenario.expect import (
    AccountCheck,
    EntryCheck,
    EventCheck,
    PositionCheck,
    PriceCheck,
)
from clearinghouse.tools.scenario.model import (
    CHAIN_KEYS,
    COMMON_STEP_KEYS,
    DEFAULT_BRIDGE,
    DEFAULT_CHAIN_ID,
    DEFAULT_MARKET_SLIPPAGE_BPS,
    DEFAULT_ORACLES,
    DEFAULT_POLICY,
    DEFAULT_START_MS,
    MARKET_KEYS,
    MARKET_REQUIRED,
    MODES,
    RESERVED_NAMES,
    SIDES,
    STEP_KEYS,
    TIFS,
    TOP_KEYS,
    TRIGGER_KINDS,
    Check,
    MarketDef,
    Scenario,
    ScenarioError,
    Step,
    _Addr,
)
from clearinghouse.tools.units import (
    UnitError,
    bps_to_ppm,
    price_to_units,
    size_to_lots,
    to_decimal,
    to_scaled,
    usdc_to_micro,
)
from tx import actions as A
from tx.messages import (
    DEFAULT_MARK_BAND_BPS,
    DEFAULT_ORACLE_FRESH_MS,
    MAX_MARK_BAND_BPS,
    MAX_ORACLE_FRESH_MS,
    MIN_MARK_BAND_BPS,
    MIN_ORACLE_FRESH_MS,
    MarketSpec,
)
from tx.signing import Signer, parse_address


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

    def unit(
        self,
        fn: Callable[..., int],
        value: Any,
        where: str,
        key: str,
        *args: Any,
        positive: bool = False,
        nonneg: bool = False,
        **kw: Any,
    ) -> int:
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
        from clearinghouse.spec.block import SUPPORTED_POLICIES

        policy = self.choice(
            chain.get("policy", DEFAULT_POLICY), {p: p for p in SUPPORTED_POLICIES}, "[chain]", "policy"
        )
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
        fresh_ms = self.unit(
            to_scaled,
            chain.get("oracle_fresh_seconds", DEFAULT_ORACLE_FRESH_MS // 1000),
            "[chain]",
            "oracle_fresh_seconds",
            3,
            positive=True,
        )
        if not MIN_ORACLE_FRESH_MS <= fresh_ms <= MAX_ORACLE_FRESH_MS:
            raise self.fail(
                "[chain]", f"oracle_fresh_seconds must be {MIN_ORACLE_FRESH_MS // 1000}..{MAX_ORACLE_FRESH_MS // 1000}"
            )

        markets_raw = data.get("market", [])
        if not isinstance(markets_raw, list) or not markets_raw:
            raise self.fail("", "at least one [[market]] table is required")
        markets = [self.market(i, m) for i, m in enumerate(markets_raw)]
        names_seen = [m.name for m in markets]
        for n in names_seen:
            if names_seen.count(n) > 1:
                raise self.fail(f"[[market]] {n!r}", "duplicate market name")

        accounts, deposits = self.accounts(data.get("accounts", []), bridge, oracles)
        sc = Scenario(
            path=self.path,
            name=name,
            description=description,
            chain_id=chain_id,
            start_ms=start_ms,
            policy=policy,
            insurance_fund=fund,
            bridge=bridge,
            oracles=oracles,
            block_ms=block_ms,
            markets=markets,
            accounts=accounts,
            initial_deposits=deposits,
            steps=[],
            oracle_fresh_ms=fresh_ms,
        )
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
                raise self.fail(where, f'start {value!r} is not an ISO-8601 time like "2026-01-01T00:00:00Z"') from None
        if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
            value = _dt.datetime(value.year, value.month, value.day)
        if not isinstance(value, _dt.datetime):
            raise self.fail(where, f"start must be an ISO-8601 UTC time or milliseconds, got {_type_name(value)}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
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
            name=name,
            sz_decimals=szd,
            max_leverage=maxlev,
            taker_fee_ppm=self.fee(m.get("taker_fee", "4.5"), where, "taker_fee"),
            maker_fee_ppm=self.fee(m.get("maker_fee", "1.5"), where, "maker_fee"),
            impact_notional=self.unit(
                usdc_to_micro, m.get("impact_notional", "1000"), where, "impact_notional", positive=True
            ),
            min_notional=self.unit(usdc_to_micro, m.get("min_notional", "10"), where, "min_notional", nonneg=True),
            initial_price=self.unit(price_to_units, m["initial_price"], where, "initial_price", szd, positive=True),
            mark_band_bps=self.integer(
                m.get("mark_band_bps", DEFAULT_MARK_BAND_BPS),
                where,
                "mark_band_bps",
                MIN_MARK_BAND_BPS,
                MAX_MARK_BAND_BPS,
            ),
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
        return self.r.unit(
            price_to_units, self.req(key) if value is None else value, self.where, key, m.sz_decimals, positive=True
        )

    def size(self, m: MarketDef, key: str = "size", *, positive: bool = True, value: Any = None) -> int:
        return self.r.unit(
            size_to_lots,
            self.req(key) if value is None else value,
            self.where,
            key,
            m.sz_decimals,
            positive=positive,
            asset=m.name,
        )

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
        st.txs.append(
            (
                name,
                A.PlaceOrder(
                    market=m.index,
                    is_buy=self.side(),
                    price=self.price(m, "price"),
                    size=self.size(m),
                    tif=tif,
                    reduce_only=self.opt_bool("reduce_only", False),
                    cloid=self.opt_int("cloid", 0, 0, 2**64 - 1),
                ),
            )
        )

    def s_market_order(self, st: Step) -> None:
        name, m = self.account(), self.market()
        st.txs.append(
            (
                name,
                A.MarketOrder(
                    market=m.index,
                    is_buy=self.side(),
                    size=self.size(m),
                    slippage_bps=self.opt_int("slippage_bps", DEFAULT_MARKET_SLIPPAGE_BPS, 0, 5000),
                    reduce_only=self.opt_bool("reduce_only", False),
                    cloid=self.opt_int("cloid", 0, 0, 2**64 - 1),
                ),
            )
        )

    def s_trigger(self, st: Step) -> None:
        name, m = self.account(), self.market()
        is_tp = self.r.choice(self.req("kind"), TRIGGER_KINDS, self.where, "kind")
        limit = self.price(m, "limit_price") if "limit_price" in self.t else 0
        st.txs.append(
            (
                name,
                A.TriggerOrder(
                    market=m.index,
                    is_buy=self.side(),
                    size=self.size(m),
                    trigger_price=self.price(m, "trigger_price"),
                    is_take_profit=is_tp,
                    limit_price=limit,
                    reduce_only=self.opt_bool("reduce_only", True),
                    cloid=self.opt_int("cloid", 0, 0, 2**64 - 1),
                ),
            )
        )

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
                raise self.fail(
                    f"unknown market {mname!r} in prices (markets: {', '.join(x.name for x in self.sc.markets)})"
                ) from None
            oracle = self.per_publisher(m, value, f"prices.{mname}", publishers)
            ext = (
                self.per_publisher(m, external[mname], f"external.{mname}", publishers)
                if mname in external
                else [0] * len(publishers)
            )
            for p, o, x in zip(publishers, oracle, ext):
                per_pub[p][m.index] = [o, x]
        for p in publishers:
            items = [
                A.OraclePrice(market=i, oracle_price=o, external_price=x) for i, (o, x) in sorted(per_pub[p].items())
            ]
            st.txs.append((p, A.OracleUpdate(prices=items)))

    def per_publisher(self, m: MarketDef, value: Any, key: str, publishers: list[str]) -> list[int]:
        if isinstance(value, list):
            if len(value) != len(publishers):
                raise self.fail(
                    f"{key} lists {len(value)} prices for {len(publishers)} publishers ({', '.join(publishers)})"
                )
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
                checks.append(
                    AccountCheck(
                        name, addr, "open_orders", self.r.integer(t["open_orders"], self.where, "open_orders", 0)
                    )
                )
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
                        checks.append(
                            PositionCheck(name, addr, m, self.size(m, f"position.{mname}", positive=False, value=v))
                        )
                else:
                    if market is None:
                        raise self.fail('position needs market = "..." (or a table: position = { BTC = "0.3" })')
                    checks.append(PositionCheck(name, addr, market, self.size(market, "position", positive=False)))
            if "entry_price" in t:
                if market is None:
                    raise self.fail('entry_price needs market = "..."')
                try:
                    expected = Fraction(to_decimal(t["entry_price"], "entry_price"))
                except UnitError as exc:
                    raise self.fail(str(exc)) from None
                checks.append(EntryCheck(name, addr, market, expected))
        else:
            for key in ("cash", "value", "open_orders", "position", "entry_price"):
                if key in t:
                    raise self.fail(f'{key} needs account = "..."')
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
                    raise self.fail(f'{key} needs event = "..."')
        if market is not None and not any(isinstance(c, (PositionCheck, EntryCheck)) for c in checks):
            raise self.fail("market is only used with position or entry_price")
        if not checks:
            raise self.fail(
                "nothing to check: give account with cash/value/position/..., insurance_fund, fee_pool, mark, oracle or event"
            )
        st.checks = checks

    def event_check(self) -> EventCheck:
        from clearinghouse.spec.event_types import EVENT_CLASSES

        by_name = {c.__name__: c for c in EVENT_CLASSES}
        ev = self.r.string(self.t["event"], self.where, "event")
        if ev not in by_name:
            raise self.fail(f"unknown event type {ev!r} (known: {', '.join(sorted(by_name))})")
        cls = by_name[ev]
        fields = cls.__struct_fields__  # type: ignore[attr-defined]
        where = self.t.get("where", {})
        if not isinstance(where, dict):
            raise self.fail("where must be a table of field = value")
        conds: dict[str, Any] = {}
        for key, value in where.items():
            if key not in fields:
                raise self.fail(f"event {ev} has no field {key!r} (fields: {', '.join(fields)})")
            conds[key] = self.condition(key, value)
        count = self.r.integer(self.t["count"], self.where, "count", 0) if "count" in self.t else None
        within = self.r.choice(
            self.t.get("within", "block"), {"block": "block", "scenario": "scenario"}, self.where, "within"
        )
        return EventCheck(cls, conds, count, within, self.sc)

    def condition(self, key: str, value: Any) -> Any:
        """Normalize a where-value: names become addresses, market names indexes; numbers stay human (Decimal)."""
        from clearinghouse.spec.constants import CROSS
        from clearinghouse.tools.units import MARKET_FIELDS

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
        if isinstance(value, str) and (
            value in self.sc.accounts or value in RESERVED_NAMES or value == self.sc.bridge or value in self.sc.oracles
        ):
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
    from clearinghouse.spec.state.keys import FEE_POOL, INSURANCE_FUND

    if name == "insurance_fund":
        return INSURANCE_FUND
    if name == "fee_pool":
        return FEE_POOL
    return Signer.from_name(name).address


def scenario_names(path: str | None) -> dict[str, bytes]:
    """name -> address of every name a scenario file uses (for ``--scenario FILE`` name lookups); {} for None."""
    if not path:
        return {}
    sc = load_scenario(path)
    return {name: addr for addr, name in sc.names().items()}
