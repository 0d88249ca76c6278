"""The demo chain: a deterministic sample log that shows what the clearinghouse does.

Everything derives from fixed names and fixed times, so the log, and every
root, is byte-for-byte the same on every machine. The story, block by block:

1. the bridge credits deposits; transfers, a withdrawal, an agent approval,
   and rejected transactions (a forged deposit, an overdraft, an agent trying
   to withdraw, a replayed nonce);
2. market makers quote BTC and ETH; traders open cross and isolated
   positions with GTC, IOC, ALO and market orders; a TP/SL is placed;
3. an hour passes: funding settles on every open position;
4. BTC crashes in two steps: the highly levered long is liquidated into the
   book, a big isolated long is partially liquidated and, when the book
   cannot absorb it, taken over by the insurance fund (backstop); the next
   leg down leaves the fund underwater and ADL closes its longs against the
   top-ranked shorts at the fund's bankruptcy price.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from clearinghouse.chain.producer import Producer
from clearinghouse.spec.constants import USDC as USDC  # re-exported: tests and tools take the demo unit from here
from tx.actions import (
    TIF_ALO,
    TIF_GTC,
    TIF_IOC,
    ApproveAgent,
    CancelByCloid,
    Deposit,
    MarketOrder,
    OraclePrice,
    OracleUpdate,
    PlaceOrder,
    Transfer,
    TriggerOrder,
    UpdateLeverage,
    Withdraw,
)
from tx.messages import (
    DEFAULT_MARK_BAND_BPS,
    DEFAULT_ORACLE_FRESH_MS,
    Genesis,
    MarketSpec,
)
from tx.signing import Signer

DEMO_CHAIN_ID = 1337
DEMO_GENESIS_TIME_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z: a fixed time, never the wall clock."""

DEMO_INSURANCE_FUND = 10_000 * USDC
"""The demo's fund is small on purpose, so the crash runs through every step of the waterfall."""
ORACLE_NAMES = ("oracle-1", "oracle-2", "oracle-3")
TRADER_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "mm-1", "mm-2", "alice-agent")
DEMO_NAMES = ("bridge",) + ORACLE_NAMES + TRADER_NAMES

BTC, ETH = 0, 1


def btc_px(usdc: int) -> int:
    """BTC prices are in units of 0.001 USDC (sz_decimals 3)."""
    return usdc * 1_000


def btc_sz(thousandths: int) -> int:
    """BTC sizes are lots of 0.001 BTC."""
    return thousandths


def eth_px(usdc: int) -> int:
    """ETH prices are in units of 0.0001 USDC (sz_decimals 2)."""
    return usdc * 10_000


def demo_markets() -> list[MarketSpec]:
    return [
        MarketSpec(
            name="BTC",
            sz_decimals=3,
            max_leverage=50,
            taker_fee_ppm=450,
            maker_fee_ppm=150,
            impact_notional=1_000 * USDC,
            min_notional=10 * USDC,
            initial_price=btc_px(90_000),
            mark_band_bps=DEFAULT_MARK_BAND_BPS,
        ),
        MarketSpec(
            name="ETH",
            sz_decimals=2,
            max_leverage=25,
            taker_fee_ppm=450,
            maker_fee_ppm=150,
            impact_notional=1_000 * USDC,
            min_notional=10 * USDC,
            initial_price=eth_px(3_200),
            mark_band_bps=DEFAULT_MARK_BAND_BPS,
        ),
    ]


def demo_genesis(policy: str = "hyperliquid", insurance_fund: int = 50_000 * USDC) -> Genesis:
    publishers = sorted(Signer.from_name(n).address for n in ORACLE_NAMES)
    return Genesis(
        chain_id=DEMO_CHAIN_ID,
        time_ms=DEMO_GENESIS_TIME_MS,
        bridge=Signer.from_name("bridge").address,
        oracle_publishers=publishers,
        insurance_fund=insurance_fund,
        policy=policy,
        markets=demo_markets(),
        oracle_fresh_ms=DEFAULT_ORACLE_FRESH_MS,
    )


def demo_labels() -> dict[bytes, str]:
    """Address -> name for every demo key (and the system accounts), for readable output."""
    from clearinghouse.spec.state.keys import FEE_POOL, INSURANCE_FUND

    labels = {Signer.from_name(n).address: n for n in DEMO_NAMES}
    labels[INSURANCE_FUND] = "insurance-fund"
    labels[FEE_POOL] = "fee-pool"
    return labels


def build_demo_log(path: str | os.PathLike[str] | None) -> Producer:
    """Write the demo log to ``path`` and return the producer (its engine holds the final state)."""
    p = Producer(demo_genesis(insurance_fund=DEMO_INSURANCE_FUND), path, overwrite=True)
    w = {n: p.wallet(n) for n in DEMO_NAMES}
    t: Callable[[], int] = lambda: p.time_ms + 1000  # noqa: E731  (time of the next block)

    def oracle(btc: int, eth: int) -> list[bytes]:
        """All three publishers post the same oracle and external prices (pins the mark)."""
        prices = [
            OraclePrice(market=BTC, oracle_price=btc_px(btc), external_price=btc_px(btc)),
            OraclePrice(market=ETH, oracle_price=eth_px(eth), external_price=eth_px(eth)),
        ]
        return [w[n].sign(OracleUpdate(prices=prices), t()) for n in ORACLE_NAMES]

    def limit(
        name: str,
        market: int,
        is_buy: bool,
        price: int,
        size: int,
        tif: int = TIF_GTC,
        reduce_only: bool = False,
        cloid: int = 0,
    ) -> bytes:
        return w[name].sign(
            PlaceOrder(
                market=market, is_buy=is_buy, price=price, size=size, tif=tif, reduce_only=reduce_only, cloid=cloid
            ),
            t(),
        )

    # 1. Collateral.
    p.block(
        [
            w["bridge"].sign(Deposit(to=w[n].address, amount=a * USDC, ref=i + 1), t())
            for i, (n, a) in enumerate(
                [
                    ("alice", 100_000),
                    ("bob", 80_000),
                    ("carol", 3_000),
                    ("dave", 7_000),
                    ("erin", 40_000),
                    ("frank", 30_000),
                    ("mm-1", 2_000_000),
                    ("mm-2", 2_000_000),
                ]
            )
        ]
        + oracle(90_000, 3_200)
    )
    p.block(
        [
            w["alice"].sign(Transfer(to=w["carol"].address, amount=500 * USDC), t()),
            w["bob"].sign(Withdraw(amount=1_000 * USDC, destination=w["bob"].address), t()),
            w["dave"].sign(
                Deposit(to=w["dave"].address, amount=1_000_000 * USDC, ref=99), t()
            ),  # forged: not the bridge
        ]
        + oracle(90_000, 3_200)
    )
    p.block(
        [
            w["alice"].sign(ApproveAgent(agent=w["alice-agent"].address, approve=True), t()),
            w["carol"].sign(Withdraw(amount=9_000 * USDC, destination=w["carol"].address), t()),  # more than carol has
        ]
        + oracle(90_000, 3_200)
    )
    replayed = w["bob"].sign(Transfer(to=w["erin"].address, amount=10 * USDC), t())
    p.block(
        [
            w["alice-agent"].sign(
                Withdraw(amount=1 * USDC, destination=w["alice-agent"].address), t()
            ),  # agents cannot withdraw
            replayed,
        ]
        + oracle(90_000, 3_200)
    )
    p.block([replayed] + oracle(90_000, 3_200))  # the same bytes again: nonce already used

    # 2. Trading. Leverage and margin modes first; makers quote; takers open positions.
    p.block(
        [
            w["carol"].sign(UpdateLeverage(market=BTC, leverage=40, is_cross=True), t()),
            w["dave"].sign(UpdateLeverage(market=BTC, leverage=50, is_cross=False), t()),
            w["erin"].sign(UpdateLeverage(market=BTC, leverage=10, is_cross=True), t()),
            w["frank"].sign(UpdateLeverage(market=BTC, leverage=20, is_cross=False), t()),
            limit("mm-1", BTC, False, btc_px(90_000), btc_sz(6_000), cloid=101),
            limit("mm-2", BTC, True, btc_px(89_990), btc_sz(6_000), cloid=201),
            limit("mm-1", ETH, False, eth_px(3_201), 5_000, TIF_ALO, cloid=102),
            limit("mm-2", ETH, True, eth_px(3_199), 5_000, TIF_ALO, cloid=202),
        ]
        + oracle(90_000, 3_200)
    )
    p.block(
        [
            limit("carol", BTC, True, btc_px(90_000), btc_sz(1_000), TIF_IOC),  # 1 BTC long at 40x cross
            limit("dave", BTC, True, btc_px(90_000), btc_sz(3_000), TIF_IOC),  # 3 BTC long at 50x isolated
            limit("erin", BTC, False, btc_px(89_990), btc_sz(2_000), TIF_IOC),  # 2 BTC short, 10x cross
            limit("frank", BTC, False, btc_px(89_990), btc_sz(2_000), TIF_IOC),  # 2 BTC short, 20x isolated
            w["alice-agent"].sign(
                MarketOrder(market=ETH, is_buy=True, size=2_000, slippage_bps=50, reduce_only=False, cloid=7), t()
            ),
            limit("bob", ETH, False, eth_px(3_199), 1_500, TIF_IOC),
            # bob's take-profit: buy back his ETH short if the mark falls to 3,150.
            w["bob"].sign(
                TriggerOrder(
                    market=ETH,
                    is_buy=True,
                    size=1_500,
                    trigger_price=eth_px(3_150),
                    is_take_profit=True,
                    limit_price=0,
                    reduce_only=True,
                    cloid=9,
                ),
                t(),
            ),
        ]
        + oracle(90_000, 3_200)
    )

    # 3. An hour later: funding settles on every open position.
    p.block(oracle(90_000, 3_205), advance_ms=3_600_000)

    # 4. The crash. mm-2 pulls its BTC bid and leaves one thin level below the market.
    p.block(
        [
            w["mm-2"].sign(CancelByCloid(market=BTC, cloid=201), t()),
            limit("mm-2", BTC, True, btc_px(88_000), btc_sz(600), cloid=203),
        ]
        + oracle(88_700, 3_180)
    )  # dave: 20% sold into the book, then backstopped below 2/3 MM
    p.block(
        [
            limit("mm-2", BTC, True, btc_px(84_500), btc_sz(600), cloid=204),
            limit("mm-2", BTC, True, btc_px(84_000), btc_sz(600), cloid=205),
        ]
        + oracle(86_000, 3_140)
    )  # carol: sold below bankruptcy; the fund pays the deficit; bob's TP fires
    p.block(oracle(80_000, 3_120))  # the fund's backstopped long is underwater: ADL against the top shorts
    p.block(oracle(80_000, 3_120))
    p.close()
    return p
