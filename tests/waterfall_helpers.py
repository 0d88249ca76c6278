"""Shared builders and invariant checks for the liquidation / ADL tests.

``WChain`` is ``tests.helpers.Chain`` on a fee-free genesis (so hand-computed
numbers need no fee terms) whose every block is followed by the waterfall
invariants of protocol §1.1 (``check_block``):

* conservation: Chain.deposits - Chain.withdrawals == Σ account cash + Σ iso_cash
  (the insurance fund and the fee pool are accounts);
* open interest: per market Σ long == Σ short == MarketState.open_interest;
* solvency: after end of block no cross account value and no isolated unit value
  (iso_cash + size x mark, flat buckets included) is negative; the insurance
  fund only as the bounded exception of protocol §12.12 (``invariants.check_solvency``);
* no socialization of bystanders: an account that starts the block with no
  position, no open order and no deficit (cash >= 0), and is not party to any
  transaction of the block, ends it with exactly the same cash. (An account
  with a deficit is an underwater unit the waterfall may still credit.)

Markets (same lots and price units as the demo genesis, so ``px``/``sz`` of
tests.helpers apply): BTC (market 0, sz_decimals 3, max leverage 50, so the
maintenance margin is notional / 100) and ETH (market 1, sz_decimals 2, max
leverage 25, maintenance notional / 50). Marks are pinned (``c.set_mark``)
unless ``pin=False``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from clearinghouse.spec.events import Deposited, Receipt, Transferred, Withdrew
from clearinghouse.spec.state import keys
from clearinghouse.spec.state.keys import INSURANCE_FUND, SYSTEM_ACCOUNTS
from clearinghouse.tools.demo import ORACLE_NAMES
from tests.helpers import BTC, ETH, Chain, px, sz, usdc
from tx import actions as A
from tx.messages import Genesis, MarketSpec
from tx.signing import Signer

__all__ = ["BTC", "ETH", "WChain", "genesis", "px", "sz", "usdc", "of_type", "one", "names_by_address", "check_block"]

GENESIS_TIME_MS = 1_767_225_600_000


def genesis(policy: str = "hyperliquid", *, fund: int | str = 50_000, btc: int = 10_000, eth: int = 1_000) -> Genesis:
    """A fee-free two-market genesis; ``fund`` whole USDC in the insurance fund, initial prices in USDC."""
    publishers = sorted(Signer.from_name(n).address for n in ORACLE_NAMES)
    markets = [
        MarketSpec(
            name="BTC",
            sz_decimals=3,
            max_leverage=50,
            taker_fee_ppm=0,
            maker_fee_ppm=0,
            impact_notional=1_000 * 10**6,
            min_notional=10 * 10**6,
            initial_price=px(btc),
        ),
        MarketSpec(
            name="ETH",
            sz_decimals=2,
            max_leverage=25,
            taker_fee_ppm=0,
            maker_fee_ppm=0,
            impact_notional=1_000 * 10**6,
            min_notional=10 * 10**6,
            initial_price=px(eth, ETH),
        ),
    ]
    return Genesis(
        chain_id=4242,
        time_ms=GENESIS_TIME_MS,
        bridge=Signer.from_name("bridge").address,
        oracle_publishers=publishers,
        insurance_fund=usdc(fund),
        policy=policy,
        markets=markets,
    )


def of_type(events: Iterable[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def one(events: Iterable[Any], cls: type) -> Any:
    found = of_type(events, cls)
    assert len(found) == 1, f"expected one {cls.__name__}, got {found}"
    return found[0]


def names_by_address(count: int, prefix: str = "w") -> list[str]:
    """``count`` wallet names sorted by address ascending (the order liquidation and ADL visit units)."""
    names = [f"{prefix}-{i}" for i in range(count)]
    return sorted(names, key=lambda n: Signer.from_name(n).address)


# ---------------------------------------------------------------- invariants
@dataclass
class Snapshot:
    cash: dict[bytes, int]
    idle: set[bytes]
    """Accounts with no open position, no open order and no deficit."""


def snapshot(c: Chain) -> Snapshot:
    cash: dict[bytes, int] = {}
    idle: set[bytes] = set()
    for k, acct in c.scan(keys.NS_ACCOUNT):
        addr = k[1:]
        cash[addr] = acct.cash
        if not acct.open_markets and acct.open_orders == 0 and acct.cash >= 0 and addr not in SYSTEM_ACCOUNTS:
            idle.add(addr)
    return Snapshot(cash, idle)


def parties(events: Iterable[Any]) -> set[bytes]:
    """Every account a transaction of the block acted for or paid."""
    out: set[bytes] = set()
    for e in events:
        if isinstance(e, Receipt):
            out.update((e.signer, e.account))
        elif isinstance(e, Deposited):
            out.add(e.account)
        elif isinstance(e, Transferred):
            out.update((e.source, e.destination))
        elif isinstance(e, Withdrew):
            out.add(e.account)
    return out


def check_block(c: Chain, before: Snapshot, events: list[Any]) -> None:
    """The protocol §1.1 invariants after one block (see the module docstring)."""
    c.check_conservation()
    c.check_funding()
    c.check_open_interest()
    # Solvency, with its one bounded exception (protocol §12.12): no unit but the insurance fund's
    # is ever below zero after a block; the fund only once every unit with a position is haircut to 0.
    from clearinghouse.tools.invariants import check_solvency
    from clearinghouse.tools.invariants import snapshot as store_snapshot

    view = c.view()
    bad = check_solvency(store_snapshot(c.p.engine.store.iter_all()), view)
    assert not bad, bad
    after = snapshot(c)
    touched = parties(events)
    for addr in before.idle - touched:
        assert after.cash.get(addr, 0) == before.cash[addr], (
            f"idle account {addr.hex()} changed: {before.cash[addr]} -> {after.cash.get(addr, 0)}"
        )


class WChain(Chain):
    """A Chain on ``genesis(...)`` that checks the waterfall invariants after every block."""

    def __init__(
        self,
        policy: str = "hyperliquid",
        *,
        fund: int | str = 50_000,
        btc: int = 10_000,
        eth: int = 1_000,
        pin: bool = True,
        check: bool = True,
        genesis_: Genesis | None = None,
    ) -> None:
        super().__init__(
            genesis_ if genesis_ is not None else genesis(policy, fund=fund, btc=btc, eth=eth), pin_marks=pin
        )
        self.check = check
        self.checked_blocks = 0

    def block(self, *txs: Any, advance_ms: int | None = None):  # type: ignore[override]
        before = snapshot(self) if self.check else None
        r = super().block(*txs, advance_ms=advance_ms)
        if before is not None:
            check_block(self, before, r.events)
            self.checked_blocks += 1
        return r

    # ------------------------------------------------------------ set-up shortcuts
    def isolated(self, name: str, market: int, leverage: int) -> None:
        r = self.leverage(name, market, leverage, cross=False)
        assert r.ok, r

    def cross_leverage(self, name: str, market: int, leverage: int) -> None:
        r = self.leverage(name, market, leverage, cross=True)
        assert r.ok, r

    def crash(self, marks: dict[int, int], *txs: Any, advance_ms: int | None = None):
        """Pin new marks (price units) and produce a block: its end-of-block work sees them."""
        for m, p in marks.items():
            self.set_mark(m, p)
        return self.block(*txs, advance_ms=advance_ms)

    def oracle_txs(self, prices: dict[int, int]) -> list[bytes]:
        """oracle-1..3 publish oracle and external price (which pins the mark to it)."""
        action = A.OracleUpdate(
            prices=[A.OraclePrice(market=m, oracle_price=p, external_price=p) for m, p in sorted(prices.items())]
        )
        return [self.tx(n, action) for n in ORACLE_NAMES]

    def fund_cash(self) -> int:
        return self.cash(INSURANCE_FUND)

    def fund_value(self) -> int:
        return self.value(INSURANCE_FUND)
