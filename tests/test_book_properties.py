"""Property test of the order book (protocol §10.3): random GTC/IOC/FOK/ALO/market orders,
cancels (by oid and client id) and modifies from four funded accounts into BTC, a few
transactions per block, and after every block:

* the book is never crossed (best bid < best ask);
* each side is in price-time priority: walking the keys, prices are monotone (bids
  descending, asks ascending) and order ids increase within a price; every key
  matches its record (side, price, oid) and has a locator pointing back at it;
* every Fill has a positive size, each account's position moved by exactly its signed
  fills (taker and maker side), and the taker-side total equals the maker-side total;
* an order once cancelled or filled (OrderStatus events) never appears in a later Fill;
* each resting order's size equals orig_size - the fills seen for its oid, and each
  placed order's final status accounts for its whole size (filled + remaining);
* each account's ``open_orders`` equals its resting orders.

Marks are not pinned: the real price step moves them with the book.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearinghouse.spec.events import Fill, OrderStatus
from clearinghouse.spec.state import keys
from tests.helpers import ALO, BTC, FOK, GTC, IOC, Chain, px
from tx import actions as A

ACCOUNTS = ("a0", "a1", "a2", "a3")
PRICES = [px(p) for p in range(89_950, 90_051, 10)]  # 89,950 .. 90,050 USDC: 5 significant figures
accounts = st.sampled_from(ACCOUNTS)
sizes = st.integers(1, 30)  # lots of 0.001 BTC: >= 89.95 USDC, above the 10 USDC minimum
cloids = st.integers(0, 3)

limit_op = st.tuples(
    st.just("limit"),
    accounts,
    st.booleans(),
    st.sampled_from(PRICES),
    sizes,
    st.sampled_from([GTC, IOC, FOK, ALO]),
    cloids,
)
ops = st.one_of(
    limit_op,
    limit_op,
    limit_op,
    st.tuples(st.just("market"), accounts, st.booleans(), sizes, st.sampled_from([0, 5, 20, 100])),
    st.tuples(st.just("cancel"), accounts, st.integers(0, 8)),
    st.tuples(st.just("cancel_cloid"), accounts, st.integers(1, 3)),
    st.tuples(st.just("modify"), accounts, st.integers(0, 8), st.sampled_from(PRICES), sizes),
)
blocks = st.lists(st.lists(ops, min_size=1, max_size=4), min_size=1, max_size=12)


def own_orders(c: Chain, name: str) -> list[Any]:
    addr = c.addr(name)
    return [o for side in (True, False) for o in c.book(BTC, side) if o.owner == addr]


def build(c: Chain, op: tuple) -> tuple[bytes, int | None]:
    """The signed transaction for ``op`` and, for an order it places, the requested size."""
    kind, name = op[0], op[1]
    if kind == "limit":
        _, _, is_buy, price, size, tif, cloid = op
        return c.order_tx(name, BTC, is_buy, price, size, tif, cloid=cloid), size
    if kind == "market":
        _, _, is_buy, size, bps = op
        return c.market_tx(name, BTC, is_buy, size, bps), size
    if kind == "cancel_cloid":
        return c.cancel_cloid_tx(name, BTC, op[2]), None
    mine = own_orders(c, name)
    oid = mine[op[2] % len(mine)].oid if mine else 10**9  # no order: rejected ORDER_NOT_FOUND
    if kind == "cancel":
        return c.cancel_tx(name, BTC, oid), None
    _, _, _, price, size = op
    return c.modify_tx(name, BTC, oid, price, size), size


class Tracker:
    """What the events of all blocks so far say about every order."""

    def __init__(self) -> None:
        self.closed: set[int] = set()
        self.filled: Counter[int] = Counter()

    def observe(self, c: Chain, block: Any, before: dict[bytes, int], requested: dict[int, int]) -> None:
        moved: Counter[bytes] = Counter()
        taker_side = maker_side = 0
        for ev in block.events:
            if isinstance(ev, Fill):
                assert ev.size > 0
                assert ev.taker_oid not in self.closed, f"closed order {ev.taker_oid} filled as taker"
                assert ev.maker_oid not in self.closed, f"closed order {ev.maker_oid} filled as maker"
                assert ev.taker != ev.maker, "self-trade"
                self.filled[ev.taker_oid] += ev.size
                self.filled[ev.maker_oid] += ev.size
                signed = ev.size if ev.taker_is_buy else -ev.size
                moved[ev.taker] += signed
                moved[ev.maker] -= signed
                taker_side += signed
                maker_side -= signed
            elif isinstance(ev, OrderStatus) and ev.status in ("canceled", "filled"):
                self.closed.add(ev.oid)
        assert taker_side + maker_side == 0
        for addr in set(before) | set(moved):
            assert c.size(addr, BTC) - before.get(addr, 0) == moved[addr], "position moved by other than its fills"
        # Every accepted order-placing transaction accounts for its whole size.
        for i, tx in enumerate(block.txs):
            if i in requested and tx.ok:
                st_ = tx.status
                as_taker = sum(f.size for f in tx.fills if f.taker_oid == st_.oid)
                assert as_taker + st_.remaining == requested[i], (tx.events, requested[i])
                if st_.status == "filled":
                    assert st_.remaining == 0


def check_book(c: Chain, tracker: Tracker) -> None:
    bids, asks = c.book_keys(BTC, True), c.book_keys(BTC, False)
    if bids and asks:
        assert bids[0][1].price < asks[0][1].price, "crossed book"
    open_count: Counter[bytes] = Counter()
    for is_buy, side in ((True, bids), (False, asks)):
        prev = None
        for key, order in side:
            price_key = int.from_bytes(key[6:14], "big")
            price = keys.U64_MAX - price_key if is_buy else price_key
            assert key[5] == (keys.SIDE_BID if is_buy else keys.SIDE_ASK) and order.is_buy == is_buy
            assert (price, int.from_bytes(key[14:22], "big")) == (order.price, order.oid)
            assert c.get(keys.order_loc_key(order.oid)).key == key
            if prev is not None:
                if is_buy:
                    assert order.price <= prev.price
                else:
                    assert order.price >= prev.price
                if order.price == prev.price:
                    assert order.oid > prev.oid and order.time_ms >= prev.time_ms
            assert order.oid not in tracker.closed
            assert 0 < order.size == order.orig_size - tracker.filled[order.oid]
            open_count[order.owner] += 1
            prev = order
    for name in ACCOUNTS:
        addr = c.addr(name)
        assert c.account(addr).open_orders == open_count[addr]


@given(blocks=blocks)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_book_stays_uncrossed_and_in_priority(blocks: list[list[tuple]]) -> None:
    c = Chain()
    c.fund(**{name: 1_000_000 for name in ACCOUNTS})
    tracker = Tracker()
    for ops_ in blocks:
        built = [build(c, op) for op in ops_]
        requested = {i: size for i, (_tx, size) in enumerate(built) if size is not None}
        before = {c.addr(n): c.size(n, BTC) for n in ACCOUNTS}
        block = c.block([tx for tx, _ in built])
        tracker.observe(c, block, before, requested)
        check_book(c, tracker)
    c.check_invariants()


def test_tracker_catches_a_fill_of_a_cancelled_order() -> None:
    """The checker itself: a synthetic Fill of a closed order is reported."""
    t = Tracker()
    t.closed.add(5)
    fake = Fill(
        tx_index=0,
        market=0,
        price=1,
        size=1,
        taker=b"a" * 20,
        maker=b"b" * 20,
        taker_oid=6,
        maker_oid=5,
        taker_is_buy=True,
        taker_fee=0,
        maker_fee=0,
        taker_realized_pnl=0,
        maker_realized_pnl=0,
        liquidation=False,
    )

    class _Block:
        events = [fake]
        txs: list = []

    try:
        t.observe(None, _Block(), {}, {})  # type: ignore[arg-type]
    except AssertionError as exc:
        assert "closed order 5" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("tracker missed the fill of a cancelled order")


def test_example_sequence_is_deterministic() -> None:
    """One fixed sequence, run twice, gives the same state roots (a cheap determinism check)."""
    seq = [
        [("limit", "a0", True, PRICES[4], 10, GTC, 1), ("limit", "a1", False, PRICES[6], 10, GTC, 0)],
        [("limit", "a2", True, PRICES[7], 15, IOC, 0), ("market", "a3", False, 5, 20)],
        [("modify", "a0", 0, PRICES[5], 12), ("cancel", "a1", 0), ("limit", "a1", True, PRICES[3], 3, ALO, 2)],
    ]
    roots = []
    for _ in range(2):
        c = Chain()
        c.fund(**{name: 1_000_000 for name in ACCOUNTS})
        for ops_ in seq:
            c.block([build(c, op)[0] for op in ops_])
        roots.append(c.p.engine.store.root)
    assert roots[0] == roots[1]
    assert A.TIF_NAMES[FOK] == "FOK"
