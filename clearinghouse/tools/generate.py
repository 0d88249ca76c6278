"""``clearinghouse generate``: seeded, realistic load logs, signed on a process pool.

::

    clearinghouse generate --out LOG --accounts N --blocks B --txs-per-block T --seed S \\
        [--profile normal|crash] [--markets 1|2] [--workers W] [--json]

Every block is executed by the real :class:`~clearinghouse.chain.producer.Producer`
(the same transition as every replayer, header roots included), so
``clearinghouse verify LOG`` accepts the result. Each block carries ``T``
user transactions plus one ``OracleUpdate`` from **every** genesis publisher
(oracle and external price), so the oracle always has a fresh majority.

Profiles
    ``normal``: accounts are funded by the bridge, then a mix of resting
    limit orders near the mark (GTC and ALO), crossing IOC and market orders,
    cancels, modifies, transfers, deposits, withdrawals, leverage and
    isolated-margin changes and TP/SL triggers. Block times step 1-3 s with an
    occasional jump of 10-30 minutes, so hourly funding settles several times.
    Prices walk randomly.

    ``crash``: a liquidation cascade. Makers quote a deep BTC book while
    leveraged longs (5-50x, cross and isolated) and lower-leverage shorts
    open positions, in batches at different prices (``ENTRY_PRICES``: the
    oracle and the book move between batches, so entries, PnL and ADL ranks
    differ); the makers then pull their depth and keep only a thin ladder; the oracle falls in legs of a few blocks one second apart,
    separated by pauses of 20-60 s (``CRASH_LEGS``). Longs are liquidated into
    the thin book, the rest is backstopped by the small insurance fund, whose
    positions go underwater on the next drop: ADL closes them against the
    ranked shorts, in several waves. Remaining blocks carry background load
    (ETH orders, transfers) while the price recovers slowly.

Determinism
    Everything derives from the seed and the options (never the wall clock,
    the process or the worker count). Transactions are planned in chunks of
    whole blocks (``plan_chunk_blocks``, fixed by ``T`` only) from the seed and
    the events of blocks already executed, then signed on the pool (signing is
    a pure function of key, action and nonce) and executed in order. The same
    options give the same bytes with any ``--workers``.

The cascade fixture (``fixtures/logs/cascade_generated.log``) is made with::

    python fixtures/logs/make_cascade_generated.py

which is ``clearinghouse generate --out fixtures/logs/cascade_generated.log
--accounts 2000 --blocks 52 --txs-per-block 250 --seed 7 --profile crash
--markets 2`` and writes the expected per-block waterfall counts beside it
(``cascade_generated.expected.json``, checked by ``tests/test_generate.py``).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec

from clearinghouse.chain.producer import Producer
from clearinghouse.spec.events import OrderStatus, Receipt
from clearinghouse.spec.waterfall.events import (
    AdlShortfall,
    AdlStep,
    Backstop,
    Haircut,
    InsuranceCover,
    LiquidationTriggered,
    MarketLiquidation,
)
from clearinghouse.tools.demo import ORACLE_NAMES, USDC, demo_genesis
from tx.actions import (
    TIF_ALO,
    TIF_GTC,
    TIF_IOC,
    Cancel,
    CancelByCloid,
    Deposit,
    MarketOrder,
    Modify,
    OraclePrice,
    OracleUpdate,
    PlaceOrder,
    Transfer,
    TriggerOrder,
    UpdateIsolatedMargin,
    UpdateLeverage,
    Withdraw,
)
from tx.builder import sign_transaction
from tx.messages import (
    Genesis,
)
from tx.signing import Signer

PROFILES = ("normal", "crash")
BTC, ETH = 0, 1
INITIAL_PRICE_USDC = {BTC: 90_000, ETH: 3_200}
LOT_DIVISOR = {BTC: 1_000, ETH: 100}
"""A lot is 1/1000 BTC or 1/100 ETH: a lot's value in USDC is price / LOT_DIVISOR."""
PRICE_UNIT = {BTC: 1_000, ETH: 10_000}
"""Price units per USDC (10^(6 - sz_decimals)); prices are kept whole USDC (always valid ticks)."""

CRASH_LEGS: tuple[tuple[int, int, int], ...] = (
    # (pause before the leg in ms, blocks in the leg, drop per block in basis points)
    (1_000, 3, 80),
    (30_000, 3, 120),
    (60_000, 4, 150),
    (20_000, 4, 150),
    (45_000, 3, 100),
)
"""The crash's oracle path: legs one second per block, pauses between them longer than the 5 s wave gap."""
ENTRY_PRICES = (88_000, 89_500, 92_000, 91_000, 90_000)
"""BTC prices (USDC) at which the crash profile's batches of positions open, the last one where the crash starts."""
CRASH_INSURANCE_FUND = 20_000 * USDC
NORMAL_INSURANCE_FUND = 1_000_000 * USDC


class GenerateError(ValueError):
    """Options that cannot produce a log (a typed CLI error, exit 1)."""

    code = "BAD_GENERATE_OPTIONS"


@dataclass(frozen=True)
class GenerateSpec:
    accounts: int
    blocks: int
    txs_per_block: int
    seed: int
    profile: str = "normal"
    markets: int = 2
    policy: str = "hyperliquid"
    """The genesis policy (any name in ``policies.POLICIES``)."""

    def check(self) -> None:
        if self.profile not in PROFILES:
            raise GenerateError(f"unknown profile {self.profile!r}; expected one of {', '.join(PROFILES)}")
        if self.markets not in (1, 2):
            raise GenerateError(f"--markets must be 1 or 2, got {self.markets}")
        if self.accounts < 2 or self.blocks < 1 or self.txs_per_block < 1:
            raise GenerateError("need --accounts >= 2, --blocks >= 1 and --txs-per-block >= 1")
        if self.txs_per_block + len(ORACLE_NAMES) > 4_000:
            raise GenerateError(
                f"--txs-per-block is at most {4_000 - len(ORACLE_NAMES)} (a block holds 4,000 transactions with the oracle updates)"
            )
        if self.seed < 0:
            raise GenerateError("--seed must be >= 0")
        from clearinghouse.spec.waterfall.policies import POLICIES

        if self.policy not in POLICIES:
            raise GenerateError(f"unknown policy {self.policy!r}; expected one of {', '.join(sorted(POLICIES))}")
        if self.profile == "crash":
            if self.accounts < 20:
                raise GenerateError("the crash profile needs at least 20 accounts")
            need = crash_min_blocks(self)
            if self.blocks < need:
                raise GenerateError(
                    f"the crash profile needs at least {need} blocks with {self.accounts} accounts and {self.txs_per_block} transactions per block"
                )


def generated_genesis(spec: GenerateSpec) -> Genesis:
    """The demo's genesis (same chain, keys, markets and settings) with the spec's policy, insurance
    fund and number of markets."""
    genesis = demo_genesis(
        policy=spec.policy,
        insurance_fund=CRASH_INSURANCE_FUND if spec.profile == "crash" else NORMAL_INSURANCE_FUND,
    )
    return msgspec.structs.replace(genesis, markets=genesis.markets[: spec.markets])


# ---------------------------------------------------------------- signing (pure, on the pool)
@cache
def _signer(name: str) -> Signer:
    return Signer.from_name(name)


def sign_items(args: tuple[int, list[tuple[str, Any, int]]]) -> list[bytes]:
    """Sign ``(key name, action, nonce)`` items: a pure function, so any worker gives the same bytes."""
    chain_id, items = args
    return [sign_transaction(_signer(name), chain_id, action, nonce) for name, action, nonce in items]


SIGN_BATCH = 128


class SigningPool:
    """Signs planned transactions inline (``workers <= 1``) or on a process pool, keeping their order."""

    def __init__(self, workers: int, chain_id: int) -> None:
        self.chain_id = chain_id
        self.pool = None
        if workers > 1:
            # fork only while this process is single-threaded (no progress thread yet), else forkserver
            methods = multiprocessing.get_all_start_methods()
            if threading.active_count() == 1 and "fork" in methods:
                method = "fork"
            else:
                method = "forkserver" if "forkserver" in methods else "spawn"
            self.pool = multiprocessing.get_context(method).Pool(workers)

    def sign(self, items: list[tuple[str, Any, int]]) -> list[bytes]:
        batches = [(self.chain_id, items[i : i + SIGN_BATCH]) for i in range(0, len(items), SIGN_BATCH)]
        if self.pool is None:
            out = [sign_items(b) for b in batches]
        else:
            out = self.pool.map(sign_items, batches)
        return [tx for batch in out for tx in batch]

    def close(self, *, abort: bool = False) -> None:
        if self.pool is not None:
            if abort:
                self.pool.terminate()  # an interrupt or error: do not wait for queued batches
            else:
                self.pool.close()
            self.pool.join()
            self.pool = None


# ---------------------------------------------------------------- planning
def usdc_px(market: int, usdc: int) -> int:
    return usdc * PRICE_UNIT[market]


def lots_for(market: int, price_usdc: int, notional_usdc: int) -> int:
    """Whole lots worth about ``notional_usdc`` at ``price_usdc`` (at least one)."""
    return max(1, notional_usdc * LOT_DIVISOR[market] // max(1, price_usdc))


def crash_roles(n: int) -> tuple[int, int, int]:
    """(makers, longs, shorts) among ``n`` accounts; the rest is background load."""
    makers = 4
    longs = (n - makers) * 55 // 100
    shorts = (n - makers) * 30 // 100
    return makers, longs, shorts


def crash_setup_txs(spec: GenerateSpec) -> int:
    makers, longs, shorts = crash_roles(spec.accounts)
    return spec.accounts + longs + shorts + (longs + shorts) * 2 // 5 + 2 * 80 * len(ENTRY_PRICES)


def crash_min_blocks(spec: GenerateSpec) -> int:
    per = spec.txs_per_block
    setup = -(-crash_setup_txs(spec) // per) + 2 + 2 * len(ENTRY_PRICES)
    return setup + sum(blocks for _p, blocks, _d in CRASH_LEGS) + 2


@dataclass
class RestingOrder:
    owner: int
    market: int
    is_buy: bool


class Planner:
    """Plans the transactions of each block from the seed and what earlier blocks did."""

    def __init__(self, spec: GenerateSpec, genesis: Genesis) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.markets = list(range(spec.markets))
        self.names = [f"gen-{i}" for i in range(spec.accounts)]
        self.addresses = [Signer.from_name(n).address for n in self.names]
        self.index_of = {a: i for i, a in enumerate(self.addresses)}
        self.nonce: dict[str, int] = {}
        self.balance = [0] * spec.accounts
        self.funded = 0
        self.ref = 0
        self.cloid = 0
        self.price = {m: INITIAL_PRICE_USDC[m] for m in self.markets}
        self.time_ms = genesis.time_ms
        self.height = 0
        self.resting: dict[int, RestingOrder] = {}
        self.queue: list[tuple[str, Any]] = []
        """User transactions waiting for a block (crash setup), in order."""
        self.block_plan: list[Callable[[], None]] = []
        if spec.profile == "crash":
            self._crash_init()

    # -- helpers
    def tx(self, name: str, action: Any, t: int) -> tuple[str, Any, int]:
        nonce = max(self.nonce.get(name, 0) + 1, t)
        self.nonce[name] = nonce
        return (name, action, nonce)

    def oracle(self, t: int) -> list[tuple[str, Any, int]]:
        prices = [
            OraclePrice(market=m, oracle_price=usdc_px(m, self.price[m]), external_price=usdc_px(m, self.price[m]))
            for m in self.markets
        ]
        return [self.tx(n, OracleUpdate(prices=prices), t) for n in ORACLE_NAMES]

    def deposit(self, i: int, amount: int, t: int) -> tuple[str, Any, int]:
        self.ref += 1
        self.balance[i] += amount
        return self.tx("bridge", Deposit(to=self.addresses[i], amount=amount, ref=self.ref), t)

    def next_cloid(self) -> int:
        self.cloid += 1
        return self.cloid

    # -- events of executed blocks (closed loop: resting order ids for cancels and modifies)
    def observe(self, events: list[Any]) -> None:
        for e in events:
            if not isinstance(e, OrderStatus):
                continue
            if e.status == "resting":
                owner = self.index_of.get(e.owner)
                if owner is not None:
                    self.resting[e.oid] = RestingOrder(owner, e.market, False)
            elif e.status in ("filled", "canceled"):
                self.resting.pop(e.oid, None)

    # -- one block
    def plan_block(self) -> tuple[int, list[tuple[str, Any, int]]]:
        """The next block's time and planned transactions (oracle updates last)."""
        self.height += 1
        if self.spec.profile == "crash":
            t, user = self._crash_block()
        else:
            t, user = self._normal_block()
        self.time_ms = t
        return t, user + self.oracle(t)

    # ------------------------------------------------------------ normal profile
    def _normal_block(self) -> tuple[int, list[tuple[str, Any, int]]]:
        rng = self.rng
        advance = rng.randint(1_000, 3_000) if rng.random() >= 0.04 else rng.randint(600_000, 1_800_000)
        t = self.time_ms + advance
        self._walk_prices(10)
        out: list[tuple[str, Any, int]] = []
        while self.funded < self.spec.accounts and len(out) < self.spec.txs_per_block:
            out.append(self.deposit(self.funded, rng.randint(1_000, 50_000) * USDC, t))
            self.funded += 1
        while len(out) < self.spec.txs_per_block and self.funded >= 2:
            out.append(self.random_tx(rng.randrange(self.funded), t))
        return t, out

    def _walk_prices(self, bps: int) -> None:
        for m in self.markets:
            step = self.rng.randint(-bps, bps)
            self.price[m] = max(1, self.price[m] * (10_000 + step) // 10_000)

    def random_tx(self, i: int, t: int, markets: list[int] | None = None) -> tuple[str, Any, int]:
        rng = self.rng
        name = self.names[i]
        market = rng.choice(markets or self.markets)
        px = self.price[market]
        roll = rng.random()
        if roll < 0.28:  # a resting order 0.1-3% away from the price
            is_buy = rng.random() < 0.5
            away = rng.randint(10, 300)
            price = px * (10_000 - away if is_buy else 10_000 + away) // 10_000
            size = lots_for(market, price, rng.randint(20, 2_000))
            tif = TIF_ALO if rng.random() < 0.4 else TIF_GTC
            return self.tx(
                name,
                PlaceOrder(
                    market=market,
                    is_buy=is_buy,
                    price=usdc_px(market, price),
                    size=size,
                    tif=tif,
                    reduce_only=False,
                    cloid=self.next_cloid(),
                ),
                t,
            )
        if roll < 0.36:  # a crossing IOC
            is_buy = rng.random() < 0.5
            price = px * (101 if is_buy else 99) // 100
            size = lots_for(market, price, rng.randint(20, 1_000))
            return self.tx(
                name,
                PlaceOrder(
                    market=market,
                    is_buy=is_buy,
                    price=usdc_px(market, price),
                    size=size,
                    tif=TIF_IOC,
                    reduce_only=False,
                    cloid=0,
                ),
                t,
            )
        if roll < 0.40:  # a market order
            size = lots_for(market, px, rng.randint(20, 800))
            return self.tx(
                name,
                MarketOrder(
                    market=market, is_buy=rng.random() < 0.5, size=size, slippage_bps=300, reduce_only=False, cloid=0
                ),
                t,
            )
        if roll < 0.50 and self.resting:  # cancel a resting order (its owner signs)
            oid = self._pick_resting()
            o = self.resting.pop(oid)
            return self.tx(self.names[o.owner], Cancel(market=o.market, oid=oid), t)
        if roll < 0.57 and self.resting:  # modify a resting order: new price near the price, new size
            oid = self._pick_resting()
            o = self.resting.pop(oid)
            mpx = self.price[o.market]
            is_buy = rng.random() < 0.5
            price = mpx * (10_000 - rng.randint(20, 300) if is_buy else 10_000 + rng.randint(20, 300)) // 10_000
            return self.tx(
                self.names[o.owner],
                Modify(
                    market=o.market,
                    oid=oid,
                    price=usdc_px(o.market, price),
                    size=lots_for(o.market, price, rng.randint(20, 1_500)),
                ),
                t,
            )
        if roll < 0.69:  # transfer
            j = rng.randrange(self.funded - 1)
            j += j >= i
            amount = rng.randint(1, max(1, self.balance[i] // 20))
            self.balance[i] -= amount
            self.balance[j] += amount
            return self.tx(name, Transfer(to=self.addresses[j], amount=amount), t)
        if roll < 0.74:
            return self.deposit(i, rng.randint(10, 5_000) * USDC, t)
        if roll < 0.79:
            amount = rng.randint(1, max(1, self.balance[i] // 50))
            self.balance[i] -= amount
            return self.tx(name, Withdraw(amount=amount, destination=self.addresses[i]), t)
        if roll < 0.86:
            top = 50 if market == BTC else 25
            return self.tx(
                name, UpdateLeverage(market=market, leverage=rng.randint(1, top), is_cross=rng.random() < 0.8), t
            )
        if roll < 0.90:
            return self.tx(name, UpdateIsolatedMargin(market=market, delta=rng.randint(-200, 500) * USDC), t)
        # a TP/SL trigger, reduce-only
        is_buy = rng.random() < 0.5
        tp = rng.random() < 0.5
        away = rng.randint(100, 800)
        trig = px * (10_000 - away if is_buy == tp else 10_000 + away) // 10_000
        return self.tx(
            name,
            TriggerOrder(
                market=market,
                is_buy=is_buy,
                size=lots_for(market, trig, rng.randint(20, 1_000)),
                trigger_price=usdc_px(market, trig),
                is_take_profit=tp,
                limit_price=0,
                reduce_only=True,
                cloid=self.next_cloid(),
            ),
            t,
        )

    def _pick_resting(self) -> int:
        k = self.rng.randrange(len(self.resting))
        return next(itertools.islice(iter(self.resting), k, None))

    # ------------------------------------------------------------ crash profile
    def _crash_init(self) -> None:
        rng = self.rng
        n = self.spec.accounts
        makers, longs, shorts = crash_roles(n)
        self.makers = list(range(makers))
        self.longs = list(range(makers, makers + longs))
        self.shorts = list(range(makers + longs, makers + longs + shorts))
        self.background = list(range(makers + longs + shorts, n))
        # Deposits (the bridge), then settings, then positions opened in batches at different prices
        # (ENTRY_PRICES: the oracle and the makers' deep book move between batches), so entries, and
        # with them PnL and the ADL ranking indexes, differ between accounts.
        deposits: list[tuple[int, int]] = []
        settings: list[tuple[str, Any]] = []
        opens: list[tuple[int, bool, int]] = []  # (account, is_buy, notional USDC)
        for i in self.longs:
            margin = rng.randint(500, 20_000)
            lev = rng.choice((5, 8, 10, 15, 20, 25, 30, 40, 50))
            is_cross = rng.random() < 0.7
            use = rng.randint(40, 95)
            deposits.append((i, margin))
            if lev != 20 or not is_cross:
                settings.append((self.names[i], UpdateLeverage(market=BTC, leverage=lev, is_cross=is_cross)))
            opens.append((i, True, margin * lev * use // 100))
        for i in self.shorts:
            margin = rng.randint(2_000, 60_000)
            lev = rng.randint(2, 10)
            use = rng.randint(40, 90)
            deposits.append((i, margin))
            settings.append((self.names[i], UpdateLeverage(market=BTC, leverage=lev, is_cross=True)))
            opens.append((i, False, margin * lev * use // 100))
        for i in self.background:
            deposits.append((i, rng.randint(1_000, 30_000)))
        total_usdc = sum(v for _i, _b, v in opens)
        maker_cash = max(1, total_usdc // len(self.makers))  # room for the whole book at low leverage
        for i in self.makers:
            deposits.append((i, maker_cash))
        deposits.sort()
        self._deposit_list = deposits
        rng.shuffle(opens)
        # (oracle price, transactions) per setup phase; each phase starts a new block.
        self.setup_phases: list[tuple[int, list[tuple[str, Any]]]] = [(INITIAL_PRICE_USDC[BTC], settings)]
        self.deep_cloids: dict[int, list[int]] = {i: [] for i in self.makers}
        batches = len(ENTRY_PRICES)
        for k, px in enumerate(ENTRY_PRICES):
            batch = opens[k * len(opens) // batches : (k + 1) * len(opens) // batches]
            orders = [
                (
                    self.names[i],
                    PlaceOrder(
                        market=BTC,
                        is_buy=b,
                        price=usdc_px(BTC, px + 100 if b else px - 100),
                        size=lots_for(BTC, px, v),
                        tif=TIF_IOC,
                        reduce_only=False,
                        cloid=0,
                    ),
                )
                for i, b, v in batch
            ]
            long_lots = sum(a.size for _n, a in orders if a.is_buy)
            short_lots = sum(a.size for _n, a in orders if not a.is_buy)
            self.setup_phases.append((px, self._deep_book(px, long_lots, short_lots)))
            self.setup_phases.append((px, orders))
        self.phase = "deposits"
        self.ladder: dict[int, list[int]] = {i: [] for i in self.makers}
        self.legs = [list(leg) for leg in CRASH_LEGS]
        self.leg_index = 0
        self.leg_block = 0

    def _deep_book(self, px: int, ask_lots: int, bid_lots: int) -> list[tuple[str, Any]]:
        """The makers replace their deep book with one around ``px``: enough on each side for a batch
        of opens, over 10 levels per maker (GTC: it executes after the cancels of the old book)."""
        out: list[tuple[str, Any]] = []
        for i in self.makers:
            out += [(self.names[i], CancelByCloid(market=BTC, cloid=c)) for c in self.deep_cloids[i]]
            self.deep_cloids[i] = []
        for side_is_buy, total in ((False, ask_lots), (True, bid_lots)):
            per = -(-total * 12 // 10 // (len(self.makers) * 10)) + 1
            for k in range(10):
                for i in self.makers:
                    price = px - 10 - 5 * k if side_is_buy else px + 10 + 5 * k
                    cloid = self.next_cloid()
                    self.deep_cloids[i].append(cloid)
                    out.append(
                        (
                            self.names[i],
                            PlaceOrder(
                                market=BTC,
                                is_buy=side_is_buy,
                                price=usdc_px(BTC, price),
                                size=per,
                                tif=TIF_GTC,
                                reduce_only=False,
                                cloid=cloid,
                            ),
                        )
                    )
        return out

    def _crash_block(self) -> tuple[int, list[tuple[str, Any, int]]]:
        rng = self.rng
        per = self.spec.txs_per_block
        t = self.time_ms + 1_000
        out: list[tuple[str, Any, int]] = []
        if self.phase == "deposits":
            while self._deposit_list and len(out) < per:
                i, amount = self._deposit_list.pop(0)
                out.append(self.deposit(i, amount * USDC, t))
            if not self._deposit_list:
                self.phase = "setup"
            return t, out
        if self.phase == "setup":
            # Phase by phase, each in new blocks: settings, then per batch the makers' book and the opens.
            px, current = self.setup_phases[0]
            self.price[BTC] = px
            while current and len(out) < per:
                name, action = current.pop(0)
                out.append(self.tx(name, action, t))
            if not current:
                self.setup_phases.pop(0)
                if not self.setup_phases:
                    self.phase = "thin"
            return t, out
        if self.phase == "thin":
            # The makers pull their depth: only a thin ladder around the price stays.
            for i in self.makers:
                for cloid in self.deep_cloids[i]:
                    out.append(self.tx(self.names[i], CancelByCloid(market=BTC, cloid=cloid), t))
            out += self._ladder(t)
            self.phase = "crash"
            return t, out + self._background(t, per - len(out))
        if self.phase == "crash" and self.leg_index < len(self.legs):
            pause, blocks, drop = self.legs[self.leg_index]
            if self.leg_block == 0:
                t = self.time_ms + pause
            self.price[BTC] = self.price[BTC] * (10_000 - drop) // 10_000
            if ETH in self.markets:
                self.price[ETH] = self.price[ETH] * (10_000 - drop // 2) // 10_000
            self.leg_block += 1
            if self.leg_block == blocks:
                self.leg_index += 1
                self.leg_block = 0
            out += self._ladder(t)
            return t, out + self._background(t, per - len(out))
        # after the crash: a slow recovery with background load
        t = self.time_ms + rng.randint(1_000, 5_000)
        self.price[BTC] = self.price[BTC] * (10_000 + rng.randint(-10, 30)) // 10_000
        if ETH in self.markets:
            self._walk_prices_one(ETH, 10)
        out += self._ladder(t)
        return t, out + self._background(t, per - len(out))

    def _walk_prices_one(self, m: int, bps: int) -> None:
        self.price[m] = max(1, self.price[m] * (10_000 + self.rng.randint(-bps, bps)) // 10_000)

    def _ladder(self, t: int) -> list[tuple[str, Any, int]]:
        """Each maker cancels its previous ladder and quotes a thin one around the price (GTC, after the cancels)."""
        out = []
        px = self.price[BTC]
        for n, i in enumerate(self.makers):
            for cloid in self.ladder[i]:
                out.append(self.tx(self.names[i], CancelByCloid(market=BTC, cloid=cloid), t))
            self.ladder[i] = []
            for k in range(1, 4):
                bid = px * (10_000 - 40 * k - 10 * n) // 10_000
                ask = px * (10_000 + 20 * k + 10 * n) // 10_000
                for is_buy, price in ((True, bid), (False, ask)):
                    cloid = self.next_cloid()
                    self.ladder[i].append(cloid)
                    size = lots_for(BTC, price, self.rng.randint(2_000, 8_000))
                    out.append(
                        self.tx(
                            self.names[i],
                            PlaceOrder(
                                market=BTC,
                                is_buy=is_buy,
                                price=usdc_px(BTC, price),
                                size=size,
                                tif=TIF_GTC,
                                reduce_only=False,
                                cloid=cloid,
                            ),
                            t,
                        )
                    )
        return out

    def _background(self, t: int, count: int) -> list[tuple[str, Any, int]]:
        """Background load from the background accounts: ETH orders, transfers and cash moves."""
        if not self.background or count <= 0:
            return []
        markets = [ETH] if ETH in self.markets else [BTC]
        out = []
        lo = self.background[0]
        self.funded = self.background[-1] + 1
        for _ in range(count):
            i = lo + self.rng.randrange(len(self.background))
            out.append(self.random_tx_background(i, t, markets))
        return out

    def random_tx_background(self, i: int, t: int, markets: list[int]) -> tuple[str, Any, int]:
        """Like ``random_tx`` but transfers stay among background accounts and no TP/SL (kept simple)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            lo = self.background[0]
            j = lo + rng.randrange(len(self.background))
            amount = rng.randint(1, max(1, self.balance[i] // 20))
            self.balance[i] -= amount
            self.balance[j] += amount
            return self.tx(self.names[i], Transfer(to=self.addresses[j], amount=amount), t)
        return self.random_tx(i, t, markets) if roll < 0.85 else self.deposit(i, rng.randint(10, 2_000) * USDC, t)


def plan_chunk_blocks(txs_per_block: int) -> int:
    """Blocks planned (and signed) together, fixed by ``T`` alone: up to 8 blocks or about 1,000
    transactions (the planner sees the events of earlier chunks only: resting order ids)."""
    return max(1, min(8, 1_000 // (txs_per_block + len(ORACLE_NAMES))))


@dataclass
class GenerateResult:
    path: str
    blocks: int
    txs: int
    bytes: int
    seconds: float
    state_root: str
    rejected: int
    liquidations: int
    backstops: int
    adl_fills: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "log": self.path,
            "blocks": self.blocks,
            "txs": self.txs,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "txs_per_second": round(self.txs / self.seconds, 1) if self.seconds > 0 else None,
            "state_root": self.state_root,
            "rejected": self.rejected,
            "liquidations": self.liquidations,
            "backstops": self.backstops,
            "adl_fills": self.adl_fills,
        }


def generate(
    path: str | os.PathLike[str],
    spec: GenerateSpec,
    *,
    workers: int = 1,
    progress: bool = False,
    on_block: Callable[[Any], None] | None = None,
) -> GenerateResult:
    """Write the log of ``spec`` to ``path`` (overwritten) through the real producer."""
    spec.check()
    genesis = generated_genesis(spec)
    planner = Planner(spec, genesis)
    partial = os.fspath(path) + ".partial"
    signing = SigningPool(workers, genesis.chain_id)  # before any progress thread: workers may fork
    start = time.perf_counter()
    counts = {"txs": 0, "rejected": 0, "liquidations": 0, "backstops": 0, "adl_fills": 0}
    bar = None
    try:
        with Producer(genesis, partial, overwrite=True) as p:
            if progress:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeRemainingColumn,
                )

                bar = Progress(
                    TextColumn("generate"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("blocks"),
                    TimeRemainingColumn(),
                    console=Console(stderr=True),
                    transient=True,
                )
                bar.start()
                task = bar.add_task("generate", total=spec.blocks)
            chunk = plan_chunk_blocks(spec.txs_per_block)
            done = 0
            while done < spec.blocks:
                n = min(chunk, spec.blocks - done)
                plans = [planner.plan_block() for _ in range(n)]
                flat = [item for _t, items in plans for item in items]
                signed = signing.sign(flat)
                pos = 0
                for t, items in plans:
                    txs = signed[pos : pos + len(items)]
                    pos += len(items)
                    executed = p.block(txs, time_ms=t)
                    planner.observe(executed.events)
                    _count(counts, executed)
                    if on_block is not None:
                        on_block(executed)
                    if bar is not None:
                        bar.advance(task)
                done += n
            root = p.engine.store.root.hex()
            height = p.engine.height
        os.replace(partial, path)  # only a complete log takes the name: an interrupted run leaves no half log
    except BaseException:
        signing.close(abort=True)
        if os.path.exists(partial):
            os.remove(partial)
        raise
    finally:
        if bar is not None:
            bar.stop()
        signing.close()
    return GenerateResult(
        path=os.fspath(path),
        blocks=height,
        txs=counts["txs"],
        bytes=os.path.getsize(path),
        seconds=time.perf_counter() - start,
        state_root=root,
        rejected=counts["rejected"],
        liquidations=counts["liquidations"],
        backstops=counts["backstops"],
        adl_fills=counts["adl_fills"],
    )


def _count(counts: dict[str, int], executed: Any) -> None:
    counts["txs"] += len(executed.txs)
    for e in executed.events:
        if isinstance(e, Receipt):
            counts["rejected"] += not e.ok
        elif isinstance(e, LiquidationTriggered):
            counts["liquidations"] += 1
        elif isinstance(e, Backstop):
            counts["backstops"] += 1
        elif isinstance(e, AdlStep):
            counts["adl_fills"] += 1


def block_waterfall_counts(events: list[Any]) -> dict[str, int]:
    """Per-block counts of the waterfall's evidence (what the cascade fixture's expected JSON records)."""
    out = {
        "liquidations": 0,
        "market_liquidations": 0,
        "backstops": 0,
        "insurance_covers": 0,
        "adl_fills": 0,
        "adl_shortfalls": 0,
        "haircuts": 0,
    }
    names: dict[type, str] = {
        LiquidationTriggered: "liquidations",
        MarketLiquidation: "market_liquidations",
        Backstop: "backstops",
        InsuranceCover: "insurance_covers",
        AdlStep: "adl_fills",
        AdlShortfall: "adl_shortfalls",
        Haircut: "haircuts",
    }
    for e in events:
        key = names.get(type(e))
        if key is not None:
            out[key] += 1
    return out


# ---------------------------------------------------------------- CLI
def add_generate_command(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="write a seeded, realistic load log (normal trading or a liquidation cascade) through the producer",
    )
    p.add_argument("--out", required=True, metavar="LOG", help="the log file to write (replaced if it exists)")
    p.add_argument("--accounts", type=int, required=True, metavar="N", help="number of accounts")
    p.add_argument("--blocks", type=int, required=True, metavar="B", help="number of blocks")
    p.add_argument(
        "--txs-per-block",
        type=int,
        required=True,
        metavar="T",
        help="user transactions per block (plus one oracle update per publisher)",
    )
    p.add_argument("--seed", type=int, required=True, metavar="S", help="the seed: same options, same bytes")
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="normal",
        help="normal trading (default) or a crash with liquidations, backstops and ADL waves",
    )
    p.add_argument("--markets", type=int, default=2, choices=(1, 2), help="markets: BTC, or BTC and ETH (default 2)")
    p.add_argument(
        "--policy",
        default="hyperliquid",
        metavar="NAME",
        help="the genesis liquidation/ADL policy (default hyperliquid)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="W",
        help="signing processes (default: the CPU count; the output does not depend on it)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: Any) -> int:
    from clearinghouse.tools.console import EXIT_OK, CliError, print_json

    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise CliError("--workers must be >= 1", error_code="BAD_GENERATE_OPTIONS")
    spec = GenerateSpec(
        accounts=args.accounts,
        blocks=args.blocks,
        txs_per_block=args.txs_per_block,
        seed=args.seed,
        profile=args.profile,
        markets=args.markets,
        policy=args.policy,
    )
    try:
        spec.check()
    except GenerateError as exc:
        raise CliError(str(exc), error_code=exc.code) from None
    out = os.path.abspath(args.out)
    if os.path.isdir(out):
        raise CliError(f"{args.out} is a folder; --out names the log file to write", error_code="BAD_GENERATE_OPTIONS")
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise CliError(f"the folder {parent} does not exist", error_code="BAD_GENERATE_OPTIONS")
    result = generate(out, spec, workers=workers, progress=not args.json and sys.stderr.isatty())
    d = result.to_dict()
    d["workers"] = workers
    if args.json:
        print_json(d)
    else:
        print(
            f"wrote {args.out}: {d['blocks']} blocks, {d['txs']} transactions ({d['rejected']} rejected), {d['bytes']:,} bytes in {d['seconds']:.1f} s "
            f"({d['txs_per_second']} tx/s, {workers} signing workers); liquidations {d['liquidations']}, backstops {d['backstops']}, "
            f"ADL fills {d['adl_fills']}; state root {d['state_root']}"
        )
    return EXIT_OK
