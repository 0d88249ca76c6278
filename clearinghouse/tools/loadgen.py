"""A small seeded load generator: long, cheap, deterministic logs for tests and benchmarks.

``generate_log(path, blocks=..., txs=..., accounts=..., seed=...)`` writes a
demo-genesis log whose blocks mix bridge deposits, transfers, withdrawals,
resting limit orders far from the mark, cancels and a few small crossing IOC
orders (so positions, fills and hourly funding appear too). The generator keeps
a rough model of balances so nearly every transaction is accepted, but nothing
depends on that: rejected transactions are valid log content as well.

Everything derives from the seed and fixed names (never the wall clock or
the process), so the same arguments give the same bytes on every machine.
Signing costs roughly 70 us per transaction; an empty block costs the
end-of-block work only.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from clearinghouse.chain.producer import Producer
from clearinghouse.tools.demo import BTC, ETH, USDC, btc_px, demo_genesis, eth_px
from tx.actions import (
    TIF_ALO,
    TIF_IOC,
    CancelByCloid,
    Deposit,
    PlaceOrder,
    Transfer,
    Withdraw,
)

INITIAL_DEPOSIT = 10_000 * USDC
"""What each generated account is credited before it acts."""


@dataclass(frozen=True)
class LoadSpec:
    """What to generate: ``blocks`` blocks of up to ``txs`` transactions among ``accounts`` accounts."""

    blocks: int
    txs: int = 4
    accounts: int = 50
    seed: int = 1
    orders: bool = True
    """Include resting orders, cancels and small crossing IOC orders (else only transfers and cash moves)."""


def generate_log(
    path: str | os.PathLike[str], *, blocks: int, txs: int = 4, accounts: int = 50, seed: int = 1, orders: bool = True
) -> int:
    """Write a deterministic log of ``blocks`` blocks to ``path`` (overwritten); return the tip height."""
    spec = LoadSpec(blocks=blocks, txs=txs, accounts=accounts, seed=seed, orders=orders)
    with Producer(demo_genesis(), path, overwrite=True) as p:
        _Generator(p, spec).run()
        return p.engine.height


class _Generator:
    """Builds the blocks of one :class:`LoadSpec` on a producer."""

    def __init__(self, p: Producer, spec: LoadSpec) -> None:
        if spec.blocks < 0 or spec.txs < 0 or spec.accounts < 2:
            raise ValueError("need blocks >= 0, txs >= 0 and at least 2 accounts")
        self.p = p
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.bridge = p.wallet("bridge")
        self.wallets = [p.wallet(f"load-{i}") for i in range(spec.accounts)]
        self.balance = [0] * spec.accounts
        self.to_fund = list(range(spec.accounts))
        self.funded = 0
        self.ref = 0
        self.cloid = 0
        self.resting: list[tuple[int, int, int]] = []  # (account, market, cloid) of orders that may still rest

    def run(self) -> None:
        for _ in range(self.spec.blocks):
            t = self.p.time_ms + 1000
            batch: list[bytes] = []
            while self.to_fund and len(batch) < max(self.spec.txs, 1):
                batch.append(self.deposit(self.to_fund.pop(0), INITIAL_DEPOSIT, t))
                self.funded += 1
            while len(batch) < self.spec.txs and self.funded >= 2:
                batch.append(self.random_tx(t))
            self.p.block(batch)

    # ------------------------------------------------------------ transactions
    def deposit(self, i: int, amount: int, t: int) -> bytes:
        self.ref += 1
        self.balance[i] += amount
        return self.bridge.sign(Deposit(to=self.wallets[i].address, amount=amount, ref=self.ref), t)

    def random_tx(self, t: int) -> bytes:
        rng = self.rng
        i = rng.randrange(self.funded)
        roll = rng.random()
        if not self.spec.orders:
            roll *= 0.75  # transfers and cash moves only
        if roll < 0.55:
            j = rng.randrange(self.funded - 1)
            j += j >= i
            amount = rng.randint(1, max(1, self.balance[i] // 20))
            self.balance[i] -= amount
            self.balance[j] += amount
            return self.wallets[i].sign(Transfer(to=self.wallets[j].address, amount=amount), t)
        if roll < 0.65:
            return self.deposit(i, rng.randint(1, 1_000) * USDC, t)
        if roll < 0.75:
            amount = rng.randint(1, max(1, self.balance[i] // 50))
            self.balance[i] -= amount
            return self.wallets[i].sign(Withdraw(amount=amount, destination=self.wallets[i].address), t)
        if roll < 0.90 or not self.resting:
            return self.rest(i, t)
        if roll < 0.96:
            return self.cancel(t)
        return self.cross(i, t)

    def rest(self, i: int, t: int) -> bytes:
        """A post-only order 5-15% away from the initial price: it rests and never fills by itself."""
        rng = self.rng
        market = rng.choice((BTC, ETH))
        is_buy = rng.random() < 0.5
        away = rng.randint(5, 15)
        if market == BTC:
            price = btc_px(90_000 * (100 - away if is_buy else 100 + away) // 100)
            size = rng.randint(1, 3)  # 0.001 BTC lots: 80-310 USDC
        else:
            price = eth_px(3_200 * (100 - away if is_buy else 100 + away) // 100)
            size = rng.randint(1, 8)  # 0.01 ETH lots: 27-295 USDC
        self.cloid += 1
        self.resting.append((i, market, self.cloid))
        return self.wallets[i].sign(
            PlaceOrder(
                market=market, is_buy=is_buy, price=price, size=size, tif=TIF_ALO, reduce_only=False, cloid=self.cloid
            ),
            t,
        )

    def cancel(self, t: int) -> bytes:
        i, market, cloid = self.resting.pop(self.rng.randrange(len(self.resting)))
        return self.wallets[i].sign(CancelByCloid(market=market, cloid=cloid), t)

    def cross(self, i: int, t: int) -> bytes:
        """A one-lot IOC that may take the best resting order on the other side (a fill, a position)."""
        market = self.rng.choice((BTC, ETH))
        is_buy = self.rng.random() < 0.5
        price = (btc_px(90_000) if market == BTC else eth_px(3_200)) * (120 if is_buy else 80) // 100
        return self.wallets[i].sign(
            PlaceOrder(market=market, is_buy=is_buy, price=price, size=1, tif=TIF_IOC, reduce_only=False, cloid=0), t
        )
