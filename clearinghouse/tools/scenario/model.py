"""The scenario data model: the compiled scenario, its markets and steps, and the format's keys and defaults
(docs/scenarios.md). Display and compile-time code only: nothing here is part of the transition."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for annotations only: run.py imports this module
    from clearinghouse.tools.scenario.run import ScenarioRun

from dataclasses import dataclass, field
from typing import Any

from clearinghouse.tools.console import EXIT_FAIL, CliError
from tx import actions as A
from tx.messages import (
    DEFAULT_ORACLE_FRESH_MS,
    Genesis,
    MarketSpec,
)
from tx.signing import Signer

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
    "expect": (
        "account",
        "market",
        "cash",
        "value",
        "position",
        "entry_price",
        "open_orders",
        "insurance_fund",
        "fee_pool",
        "mark",
        "oracle",
        "event",
        "where",
        "count",
        "within",
    ),
}
TOP_KEYS = ("name", "description", "accounts", "chain", "market", "step")
CHAIN_KEYS = (
    "chain_id",
    "start",
    "policy",
    "insurance_fund",
    "bridge",
    "oracles",
    "block_seconds",
    "oracle_fresh_seconds",
)
MARKET_KEYS = (
    "name",
    "sz_decimals",
    "max_leverage",
    "initial_price",
    "taker_fee",
    "maker_fee",
    "impact_notional",
    "min_notional",
    "mark_band_bps",
)
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
    checks: list[Check] = field(default_factory=list)


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
        from clearinghouse.tools.names import SYSTEM_NAMES

        out: dict[bytes, str] = dict(SYSTEM_NAMES)
        for n in [self.bridge, *self.oracles, *self.accounts]:
            out[Signer.from_name(n).address] = n
        return out


class Check:
    def evaluate(self, run: ScenarioRun) -> str | None:  # pragma: no cover - interface
        """None if it holds, else what was found instead."""
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class _Addr:
    addr: bytes
    label: str
