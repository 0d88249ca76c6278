"""Cancelling a liquidated unit's orders costs O(its orders), not O(book) (protocol §7.1, §12.3).

Attack: liquidating a unit cancelled its resting orders by walking both sides of every
affected market's book and reading each order to find the owner's, so a block's
liquidation work grew with (liquidated units) x (resting orders): 2,000 liquidations
against 20,000 far-away resting orders took 13.3 s. Anyone can rest 1,000 cheap orders
per account.

The tests here go through signed blocks: a liquidation block with many far-away resting
orders must read no more resting orders than the liquidated units own (plus a constant per
liquidation order for the best price of the other side), and the cancellations come out in
the same order as before (per market ascending, bids then asks, key order). The timing is
in ``benchmarks/bench_liquidation_orders.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import BTC, BUY, ETH, GTC, SELL, Chain, px, sz
from hypothesis import given, settings
from hypothesis import strategies as st

from clearinghouse.spec import end_of_block
from clearinghouse.spec.events import OrderStatus
from clearinghouse.spec.state import keys
from clearinghouse.spec.state.records import Order
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState
from state import MemoryStore
from tx.encoding import encode

N_LIQUIDATED = 12
FAR_ORDERS = 1_000
"""One account's maximum, all far from the mark (never crossed by a liquidation)."""


def count_order_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count reads of resting-order records (``O`` keys) made while the liquidation step runs."""
    counts = {"reads": 0}
    inside = {"on": False}
    real_get = WorkingState.get
    real_step = end_of_block.run_liquidations

    def counting_get(self: WorkingState, key: bytes) -> Any:
        if inside["on"] and key[:1] == keys.NS_ORDER:
            counts["reads"] += 1
        return real_get(self, key)

    def step(ws: Any, time_ms: int) -> list[Any]:
        inside["on"] = True
        try:
            return real_step(ws, time_ms)
        finally:
            inside["on"] = False

    monkeypatch.setattr(WorkingState, "get", counting_get)
    monkeypatch.setattr(end_of_block, "run_liquidations", step)
    return counts


def build(far_orders: int) -> Chain:
    """``N_LIQUIDATED`` 20x longs of 0.01 BTC, each with its own orders in both markets, and
    ``far_orders`` resting bids and asks of an outsider far from the mark."""
    c = Chain(pin_marks=True)
    names = [f"t{i:02d}" for i in range(N_LIQUIDATED)]
    c.fund(mm=1_000_000, far=1_000_000, **{n: 60 for n in names})
    # The longs: each buys 0.01 BTC from mm at 90,000 (IM 45 USDC at 20x).
    txs = [c.order_tx("mm", BTC, SELL, px(90_000), sz("0.01") * N_LIQUIDATED, GTC)]
    txs += [c.order_tx(n, BTC, BUY, px(90_000), sz("0.01"), "IOC") for n in names]
    r = c.block(txs)
    assert r.all_ok and all(c.size(n, BTC) == 10 for n in names)
    # Each long's own resting orders: far bids and asks in BTC and ETH (small; placement passes).
    own = []
    for i, n in enumerate(names):
        own += [
            c.order_tx(n, BTC, BUY, px(50_000 + i), sz("0.001"), GTC),
            c.order_tx(n, BTC, SELL, px(150_000 - i), sz("0.001"), GTC),
            c.order_tx(n, ETH, BUY, px(2_000 + i, ETH), sz("0.01", ETH), GTC),
        ]
    r = c.block(own)
    assert r.all_ok, [(t.code, t.receipt.message) for t in r.txs if not t.ok]
    # The outsider's far-away book: bids at 40,000-ish, asks at 170,000-ish.
    far = [
        c.order_tx("far", BTC, i % 2 == 0, px(40_000 + i) if i % 2 == 0 else px(170_000 - i), sz("0.001"), GTC)
        for i in range(far_orders)
    ]
    for chunk in range(0, len(far), 2_000):
        r = c.block(far[chunk : chunk + 2_000])
        assert r.all_ok
    return c


def expected_cancellations(c: Chain, name: str) -> list[int]:
    """The oids of ``name``'s resting orders in cancellation order: markets of its positions
    ascending (here BTC only), bids then asks, key order."""
    owner = c.addr(name)
    out = []
    for m in sorted(m for m in (BTC, ETH) if c.size(name, m) != 0):
        for is_buy in (True, False):
            out += [o.oid for o in c.book(m, is_buy) if o.owner == owner]
    return out


def test_liquidation_reads_only_the_units_own_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    c = build(FAR_ORDERS)
    names = [f"t{i:02d}" for i in range(N_LIQUIDATED)]
    expected = {c.addr(n): expected_cancellations(c, n) for n in names}
    assert all(len(v) == 2 for v in expected.values())
    counts = count_order_reads(monkeypatch)
    r = c.move_mark(BTC, px(84_000))  # every long is below maintenance margin now
    liquidated = [e for e in r.events if type(e).__name__ == "LiquidationTriggered"]
    assert len(liquidated) == N_LIQUIDATED
    got: dict[bytes, list[int]] = {}
    for e in r.events:
        if isinstance(e, OrderStatus) and e.reason == "liquidation":
            got.setdefault(e.owner, []).append(e.oid)
    assert got == expected
    # Own orders (2 per unit, read to cancel) plus the best order of the other side per liquidation order.
    assert counts["reads"] <= N_LIQUIDATED * 10, counts
    # The ETH orders (no ETH position) stay, as before.
    assert all(len([o for o in c.book(ETH, BUY) if o.owner == c.addr(n)]) == 1 for n in names)
    c.check_invariants()


# ---------------------------------------------------------------- the per-owner index is derived exactly
OWNERS = [bytes([i]) * 20 for i in (1, 2, 3)]
ORDER_KEYS = [
    (m, is_buy, price, oid)
    for oid, (m, is_buy, price) in enumerate(
        [(0, True, 5), (0, False, 7), (1, True, 5), (0, True, 6), (1, False, 9), (0, False, 8)], start=1
    )
]


def order_record(oid: int, owner: bytes, is_buy: bool, price: int, size: int) -> Order:
    return Order(
        oid=oid,
        owner=owner,
        is_buy=is_buy,
        price=price,
        size=size,
        orig_size=size,
        tif=0,
        reduce_only=False,
        cloid=0,
        time_ms=0,
    )


write = st.tuples(
    st.sampled_from(range(len(ORDER_KEYS))), st.one_of(st.none(), st.tuples(st.sampled_from(OWNERS), st.integers(1, 3)))
)


def owner_view(ws: WorkingState) -> dict[tuple[bytes, int], list[bytes]]:
    return {(o, m): list(ws.index.owner_orders(o, m)) for o in OWNERS for m in (0, 1)}


def derived(ws: WorkingState) -> dict[tuple[bytes, int], list[bytes]]:
    """The per-owner index as it must be: every present order key of (owner, market), sorted."""
    out: dict[tuple[bytes, int], list[bytes]] = {(o, m): [] for o in OWNERS for m in (0, 1)}
    for m, is_buy, price, oid in ORDER_KEYS:
        key = keys.order_key(m, is_buy, price, oid)
        rec = ws.get(key)
        if rec is not None:
            out[(rec.owner, m)].append(key)
    return {k: sorted(v) for k, v in out.items()}


def put(ws: WorkingState, i: int, value: Any) -> None:
    m, is_buy, price, oid = ORDER_KEYS[i]
    key = keys.order_key(m, is_buy, price, oid)
    if value is None:
        ws.delete(key)
        return
    owner, size = value
    current = ws.get(key)
    if current is not None:
        owner = current.owner  # an order's owner never changes; its size may
    ws.put(key, order_record(oid, owner, is_buy, price, size))


@settings(max_examples=200, deadline=None)
@given(
    committed=st.lists(write, max_size=8),
    before=st.lists(write, max_size=8),
    inside=st.lists(write, max_size=8),
    commit=st.booleans(),
)
def test_owner_index_follows_writes_and_rollbacks(committed: list, before: list, inside: list, commit: bool) -> None:
    store = MemoryStore()
    ws0 = WorkingState(store, KeyIndex())
    for i, v in committed:
        put(ws0, i, v)
    store.commit_block(0, {k: encode(v) for k, v in ws0._dirty.items() if v is not None}, {})
    ws = WorkingState(store, KeyIndex.load(store))
    assert owner_view(ws) == derived(ws)
    for i, v in before:
        put(ws, i, v)
    snapshot = owner_view(ws)
    ws.begin_tx()
    mark = ws.savepoint()
    for i, v in inside:
        put(ws, i, v)
    assert owner_view(ws) == derived(ws)
    if commit:
        ws.commit_tx()
    else:
        ws.rollback_to(mark)
        assert owner_view(ws) == snapshot
        ws.rollback_tx()
        assert owner_view(ws) == snapshot
    assert owner_view(ws) == derived(ws)
