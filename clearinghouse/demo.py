"""The demo chain: a deterministic sample log that exercises what the clearinghouse does.

Everything is derived from fixed names and fixed times, so the log, and
therefore every root, is byte-for-byte the same on every machine. It grows
with the project: collateral first, then trading and funding, then the whole
liquidation waterfall.
"""

from __future__ import annotations

import os

from tx.actions import ApproveAgent, Deposit, Transfer, Withdraw
from tx.messages import Genesis, MarketSpec
from tx.signing import Signer

from .producer import Producer

DEMO_CHAIN_ID = 1337
DEMO_GENESIS_TIME_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z: a fixed time, never the wall clock."""
USDC = 1_000_000
"""One USDC in micro-units."""

ORACLE_NAMES = ("oracle-1", "oracle-2", "oracle-3")


def demo_markets() -> list[MarketSpec]:
    """BTC (sz_decimals 3: 0.001 BTC lots, price unit 0.001 USDC... see below) and ETH."""
    return [
        # BTC: size lots of 0.001 BTC, price units of 10^-(6-3) = 0.001 USDC.
        MarketSpec(name="BTC", sz_decimals=3, max_leverage=50, taker_fee_ppm=450, maker_fee_ppm=150,
                   impact_notional=1_000 * USDC, min_notional=10 * USDC, initial_price=90_000_000),
        # ETH: size lots of 0.01 ETH, price units of 10^-(6-2) = 0.0001 USDC.
        MarketSpec(name="ETH", sz_decimals=2, max_leverage=25, taker_fee_ppm=450, maker_fee_ppm=150,
                   impact_notional=1_000 * USDC, min_notional=10 * USDC, initial_price=32_000_000),
    ]


def demo_genesis(policy: str = "hyperliquid") -> Genesis:
    publishers = sorted(Signer.from_name(n).address for n in ORACLE_NAMES)
    return Genesis(
        chain_id=DEMO_CHAIN_ID,
        time_ms=DEMO_GENESIS_TIME_MS,
        bridge=Signer.from_name("bridge").address,
        oracle_publishers=publishers,
        insurance_fund=50_000 * USDC,
        policy=policy,
        markets=demo_markets(),
    )


def build_demo_log(path: str | os.PathLike[str]) -> Producer:
    """Write the demo log to ``path`` and return the producer (its engine holds the final state)."""
    genesis = demo_genesis()
    p = Producer(genesis, path, overwrite=True)
    bridge = p.wallet("bridge")
    alice, bob, carol, dave = (p.wallet(n) for n in ("alice", "bob", "carol", "dave"))
    agent = p.wallet("alice-agent")
    t = lambda: p.time_ms + 1000  # noqa: E731  (time of the next block)

    # Block 1: the bridge credits deposits.
    p.block([
        bridge.sign(Deposit(to=alice.address, amount=100_000 * USDC, ref=1), t()),
        bridge.sign(Deposit(to=bob.address, amount=80_000 * USDC, ref=2), t()),
        bridge.sign(Deposit(to=carol.address, amount=60_000 * USDC, ref=3), t()),
        bridge.sign(Deposit(to=dave.address, amount=5_000 * USDC, ref=4), t()),
    ])
    # Block 2: transfers and a withdrawal; one deposit forged by a non-bridge key is rejected.
    p.block([
        alice.sign(Transfer(to=dave.address, amount=2_500 * USDC), t()),
        carol.sign(Withdraw(amount=1_000 * USDC, destination=carol.address), t()),
        dave.sign(Deposit(to=dave.address, amount=1_000_000 * USDC, ref=99), t()),
    ])
    # Block 3: an agent is approved; a withdrawal beyond the balance is rejected.
    p.block([
        alice.sign(ApproveAgent(agent=agent.address, approve=True), t()),
        dave.sign(Withdraw(amount=9_000 * USDC, destination=dave.address), t()),
    ])
    # Block 4: the agent may not withdraw for its owner; a replayed nonce is rejected.
    replayed = bob.sign(Transfer(to=carol.address, amount=10 * USDC), t())
    p.block([
        agent.sign(Withdraw(amount=1 * USDC, destination=agent.address), t()),
        replayed,
    ])
    p.block([replayed])
    p.close()
    return p
