"""The ADL queue is ranked once per market side per block and shared (protocol §12.10; issue 8,
attack 5: every underwater unit used to rank the whole queue again, quadratic in the number of
underwater units).

The chain: policy ``seed``, an empty fund, N small cross longs of 0.02 BTC bought from resting
asks at 90,000, then BTC's oracle at 81,000: each long is worth -80 USDC, no bid, no backstop,
so step 50 deleverages N units with positions against the shorts' queue.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.bench_adl_queue import measure
from clearinghouse.chain.producer import Producer
from clearinghouse.spec import end_of_block
from clearinghouse.spec.waterfall import adl
from clearinghouse.spec.waterfall.events import AdlQueue, AdlStep
from clearinghouse.spec.waterfall.ranking import ranking_hash
from clearinghouse.tools.demo import ORACLE_NAMES, USDC, demo_genesis
from clearinghouse.tools.invariants import check_all
from tx import actions as A

BTC, PX, LOTS = 0, 1_000, 20


def test_one_queue_build_for_all_underwater_units() -> None:
    """Fails before the shared queue: 30 underwater units ranked the queue 30 times."""
    row = measure(30)
    assert (row["adl_queue_events"], row["adl_steps"]) == (30, 30)
    assert row["queue_builds"] == 1


def two_whales(n: int, first_lots: int) -> tuple[Producer, Any]:
    """n longs; the first ``first_lots`` lots were sold by whale-1 (less value: ranked first), the rest by whale-2."""
    p = Producer(demo_genesis(policy="seed", insurance_fund=0))
    bridge, w1, w2 = p.wallet("bridge"), p.wallet("whale-1"), p.wallet("whale-2")
    users = [p.wallet(f"u{i}") for i in range(n)]
    t = p.time_ms + 1000
    p.block(
        [
            bridge.sign(A.Deposit(to=w1.address, amount=200_000 * USDC, ref=0), t),
            bridge.sign(A.Deposit(to=w2.address, amount=10_000_000 * USDC, ref=1), t),
        ]
        + [bridge.sign(A.Deposit(to=u.address, amount=100 * USDC, ref=i + 2), t) for i, u in enumerate(users)],
        time_ms=t,
    )
    t += 1000
    p.block(
        [
            w1.sign(
                A.PlaceOrder(
                    market=BTC,
                    is_buy=False,
                    price=90_000 * PX,
                    size=first_lots,
                    tif=A.TIF_GTC,
                    reduce_only=False,
                    cloid=0,
                ),
                t,
            )
        ],
        time_ms=t,
    )
    t += 1000
    p.block(
        [
            w2.sign(
                A.PlaceOrder(
                    market=BTC,
                    is_buy=False,
                    price=90_000 * PX,
                    size=LOTS * n,
                    tif=A.TIF_GTC,
                    reduce_only=False,
                    cloid=0,
                ),
                t,
            )
        ],
        time_ms=t,
    )
    t += 1000
    p.block(
        [
            u.sign(
                A.PlaceOrder(
                    market=BTC, is_buy=True, price=90_000 * PX, size=LOTS, tif=A.TIF_IOC, reduce_only=False, cloid=0
                ),
                t,
            )
            for u in users
        ],
        time_ms=t,
    )
    prices = [A.OraclePrice(market=BTC, oracle_price=81_000 * PX, external_price=81_000 * PX)]
    return p, [p.wallet(name).sign(A.OracleUpdate(prices=prices), t + 1000) for name in ORACLE_NAMES]


def test_later_units_walk_past_entries_closed_earlier_in_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whale-1 (ranked first) holds 5 x 20 lots: the first 5 units in unit order close against it,
    the other 7 pass over its closed entry to whale-2. Every unit's AdlQueue shows the queue as
    ranked once, at the first use in the block (same hash, length and top)."""
    p, crash = two_whales(12, 5 * LOTS)
    ranked: list[bytes] = []
    real = adl.build_queue

    def spy(*args: Any, **kwargs: Any) -> Any:
        queue = real(*args, **kwargs)
        ranked.append(ranking_hash(queue))
        return queue

    monkeypatch.setattr(adl, "build_queue", spy)
    ex = p.block(crash)
    queues = [e for e in ex.events if isinstance(e, AdlQueue)]
    steps = [e for e in ex.events if isinstance(e, AdlStep)]
    assert len(ranked) == 1 and len(queues) == 12
    assert {(q.ranking_hash, q.queue_length) for q in queues} == {(ranked[0], 2)}
    w1, w2 = p.wallet("whale-1").address, p.wallet("whale-2").address
    assert [q.top[0].account for q in queues] == [w1] * 12  # ranked at the start of the step
    assert [(s.counterparty, s.rank, s.size) for s in steps] == [(w1, 1, LOTS)] * 5 + [(w2, 2, LOTS)] * 7
    assert not check_all(p.engine.store)
    p.close()


def test_one_underwater_unit_is_closed_at_its_bankruptcy_price() -> None:
    """One underwater unit: the walk protocol §12.7 describes (regression guard). Value 100 - 0.81
    (taker fee, 450 ppm of 1,800) - 0.02 x 9,000 = -80.81: bankruptcy 81,000 + 80.81 / 0.02 = 85,040.5."""
    p, crash = two_whales(1, LOTS)
    ex = p.block(crash)
    (step,) = [e for e in ex.events if isinstance(e, AdlStep)]
    assert (step.counterparty, step.size, step.price) == (p.wallet("whale-1").address, LOTS, 85_040_500)
    assert end_of_block.run_adl is adl.run_adl
    p.close()


def test_a_unit_undone_by_waterfall_skipped_gives_back_the_entries_it_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whale-1 (ranked first) holds exactly one unit's 20 lots. The first unit closes it whole, then
    hits a hard bound and is undone (WaterfallSkipped): whale-1's position is back, and the next unit
    finds it at rank 1 in the same shared queue; the third goes on to whale-2."""
    from clearinghouse.spec.errors import InvalidAmount
    from clearinghouse.spec.waterfall.events import WaterfallSkipped

    p, crash = two_whales(3, LOTS)
    real = adl.fund_absorbs
    calls = [0]

    def first_fails(ctx: Any, unit: Any) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise InvalidAmount("cash would overflow a 64-bit balance")
        real(ctx, unit)

    monkeypatch.setattr(adl, "fund_absorbs", first_fails)
    ex = p.block(crash)
    skipped = [e for e in ex.events if isinstance(e, WaterfallSkipped)]
    steps = [e for e in ex.events if isinstance(e, AdlStep)]
    w1, w2 = p.wallet("whale-1").address, p.wallet("whale-2").address
    assert len(skipped) == 1 and skipped[0].step == "adl"
    assert [(s.counterparty, s.rank) for s in steps] == [(w1, 1), (w2, 2)]
    p.close()


def test_queue_cursors_are_restored_when_a_unit_is_undone() -> None:
    """``Queues.rollback``: a cursor moved past entries a later-undone unit closed goes back, and a
    queue first ranked during that unit (from its undone fills) is dropped, to be ranked again."""
    p, _crash = two_whales(2, LOTS)
    queues = adl.Queues(p.engine.view(), "hyperliquid")
    q = queues.get(BTC, winners_long=False)
    assert len(q.entries) == 2 and queues.builds == 1
    saved = queues.cursors()
    q.start = 1  # as if the undone unit's walk had passed over whale-1, closed by its own fills
    queues.get(1, winners_long=True)  # a queue first ranked during the undone unit
    queues.rollback(saved)
    assert queues.built[(BTC, False)].start == 0 and (1, True) not in queues.built
    p.close()
