"""A small test DSL around ``clearinghouse.chain.producer.Producer``.

Typical use::

    c = Chain(pin_marks=True)              # demo genesis: market 0 BTC, 1 ETH
    c.fund(alice=100_000, bob=50_000)      # whole USDC, one deposit block
    r = c.place("alice", BTC, BUY, px(90_000), sz("0.5"))   # one-tx block
    assert r.ok and r.status.status == "resting"
    assert c.size("alice", BTC) == 0 and c.book(BTC, BUY)[0].oid == r.oid
    c.check_invariants()                   # conservation and open interest

Units (protocol §2.1): money is micro-USDC (``usdc(1) == 1_000_000``); a
market's price is an integer count of 10^-(6 - sz_decimals) USDC and its size
an integer count of 10^-sz_decimals lots. ``px(90_000)`` is 90,000 USDC in
BTC price units (90_000_000), ``sz("0.5")`` is 0.5 BTC (500 lots);
pass ``market=ETH`` for ETH.

Blocks. ``c.block(tx, tx, ...)`` produces one block from signed transactions
(``c.tx(name, action)`` or the ``c.order_tx`` family build them) and returns a
``BlockResult``. The one-action helpers (``place``, ``ioc``, ``market``,
``cancel``, ...) sign, produce a one-transaction block and return a ``TxResult``
(receipt, events, ``oid``), so a test reads like a script.

Marks. The end-of-block ``prices`` step recomputes every mark from the oracle
and the book each block, which makes hand-computed margin numbers depend on
the price module. ``Chain(pin_marks=True)`` (or ``c.set_mark(m, price)``) pins
marks: while a mark is pinned, every block runs an extra end-of-block step
right after ``prices`` (before ``triggers``) that sets ``mark_price`` to the
pinned value, so both the triggers of that block and the transactions of the
following blocks see exactly that mark. The step exists only inside this
chain's ``block`` call; nothing global is left behind. ``c.oracle_update``
moves prices the real way (the same OracleUpdate signed by every publisher).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from clearinghouse.chain.producer import Producer
from clearinghouse.spec import end_of_block
from clearinghouse.spec.events import Fill, OrderStatus, Receipt
from clearinghouse.spec.state import keys
from clearinghouse.spec.state.keys import FEE_POOL, INSURANCE_FUND, record_type
from clearinghouse.spec.state.records import Account, MarketState, Order, Position, Trigger
from clearinghouse.spec.state.records import Chain as ChainRecord
from clearinghouse.spec.trading.margin import cross_health
from clearinghouse.tools.demo import demo_genesis
from tx import actions as A
from tx.actions import TIF_ALO, TIF_FOK, TIF_GTC, TIF_IOC

USDC = 1_000_000
"""One USDC in micro-units."""
BTC = 0
ETH = 1
BUY = True
SELL = False
GTC, IOC, FOK, ALO = TIF_GTC, TIF_IOC, TIF_FOK, TIF_ALO
TIFS = {"GTC": TIF_GTC, "IOC": TIF_IOC, "FOK": TIF_FOK, "ALO": TIF_ALO}

_SZ_DECIMALS = {BTC: 3, ETH: 2}
"""sz_decimals of the demo markets (the default genesis)."""


# ---------------------------------------------------------------- unit conversion
def usdc(amount: int | str | Decimal) -> int:
    """Whole or decimal USDC -> micro-USDC (exact; rejects sub-micro amounts)."""
    micro = Decimal(str(amount)) * USDC
    if micro != micro.to_integral_value():
        raise ValueError(f"{amount} USDC is not a whole number of micro-USDC")
    return int(micro)


def px(price_usdc: int | str | Decimal, market: int = BTC) -> int:
    """A price in USDC -> the market's price units (10^-(6 - sz_decimals) USDC)."""
    units = Decimal(str(price_usdc)) * 10 ** (6 - _SZ_DECIMALS[market])
    if units != units.to_integral_value():
        raise ValueError(f"price {price_usdc} is finer than market {market}'s price unit")
    return int(units)


def sz(size: int | str | Decimal, market: int = BTC) -> int:
    """A size in base units (BTC, ETH) -> lots (10^-sz_decimals)."""
    lots = Decimal(str(size)) * 10 ** _SZ_DECIMALS[market]
    if lots != lots.to_integral_value():
        raise ValueError(f"size {size} is finer than market {market}'s lot")
    return int(lots)


# ---------------------------------------------------------------- results
@dataclass
class TxResult:
    """One transaction's receipt and the events it caused."""

    receipt: Receipt
    events: list[Any]

    @property
    def ok(self) -> bool:
        return self.receipt.ok

    @property
    def code(self) -> str:
        return self.receipt.code

    @property
    def fills(self) -> list[Fill]:
        return [e for e in self.events if isinstance(e, Fill)]

    @property
    def statuses(self) -> list[OrderStatus]:
        return [e for e in self.events if isinstance(e, OrderStatus)]

    @property
    def status(self) -> OrderStatus | None:
        """The placed order's final status (order handlers emit it last)."""
        st = self.statuses
        return st[-1] if st else None

    @property
    def oid(self) -> int:
        """The order id of the order this transaction placed (or cancelled)."""
        assert self.status is not None, f"no order status in {self.events}"
        return self.status.oid

    def canceled(self, reason: str | None = None) -> list[OrderStatus]:
        return [s for s in self.statuses if s.status == "canceled" and (reason is None or s.reason == reason)]

    def filled_size(self) -> int:
        return sum(f.size for f in self.fills)

    def __repr__(self) -> str:  # readable assertion failures
        return f"TxResult({self.receipt.action} ok={self.ok} code={self.code} msg={self.receipt.message!r}, {len(self.events)} events)"


@dataclass
class BlockResult:
    """A produced block: its receipts in transaction order, and every event."""

    height: int
    events: list[Any]
    txs: list[TxResult] = field(default_factory=list)
    end_events: list[Any] = field(default_factory=list)
    """Events of end-of-block work (prices, triggers, funding, ...)."""

    @classmethod
    def from_events(cls, height: int, events: list[Any]) -> BlockResult:
        by_index: dict[int, TxResult] = {}
        current: TxResult | None = None
        end: list[Any] = []
        for ev in events:
            if isinstance(ev, Receipt):
                current = TxResult(ev, [])
                by_index[ev.tx_index] = current
            elif (
                getattr(ev, "tx_index", None) is not None
                and current is not None
                and ev.tx_index == current.receipt.tx_index
            ):
                current.events.append(ev)
            else:
                current = None
                end.append(ev)
        txs = [by_index[i] for i in sorted(by_index)]
        return cls(height=height, events=events, txs=txs, end_events=end)

    def __getitem__(self, i: int) -> TxResult:
        """The result of the i-th transaction as given to ``block`` (producer order)."""
        return self.txs[i]

    @property
    def fills(self) -> list[Fill]:
        return [e for e in self.events if isinstance(e, Fill)]

    @property
    def statuses(self) -> list[OrderStatus]:
        return [e for e in self.events if isinstance(e, OrderStatus)]

    @property
    def all_ok(self) -> bool:
        return all(t.ok for t in self.txs)

    def codes(self) -> list[str]:
        return [t.code for t in self.txs]


# ---------------------------------------------------------------- the chain
class Chain:
    """A producer on the demo genesis (or ``genesis``) with named wallets and state readers."""

    def __init__(self, genesis: Any = None, *, pin_marks: bool = False, advance_ms: int = 1000) -> None:
        self.genesis = genesis if genesis is not None else demo_genesis()
        self.p = Producer(self.genesis)
        self.advance_ms = advance_ms
        self._wallets: dict[str, Any] = {}
        self.pins: dict[int, int] = {}
        self.history: list[BlockResult] = []
        if pin_marks:
            for m, spec in enumerate(self.genesis.markets):
                self.pins[m] = spec.initial_price

    # ------------------------------------------------------------ wallets and signing
    def wallet(self, name: str):
        if name not in self._wallets:
            self._wallets[name] = self.p.wallet(name)
        return self._wallets[name]

    def addr(self, name: str | bytes) -> bytes:
        """The address of a named wallet (bytes pass through: system accounts, raw addresses)."""
        return name if isinstance(name, bytes) else self.wallet(name).address

    @property
    def next_time(self) -> int:
        return self.p.time_ms + self.advance_ms

    def tx(self, name: str, action: Any) -> bytes:
        """``action`` signed by the named wallet, with a nonce valid for the next block."""
        return self.wallet(name).sign(action, self.next_time)

    # ------------------------------------------------------------ blocks
    def block(self, *txs: bytes | Iterable[bytes], advance_ms: int | None = None) -> BlockResult:
        """Produce one block from signed transactions (given as arguments or one list)."""
        flat: list[bytes] = []
        for t in txs:
            if isinstance(t, (bytes, bytearray)):
                flat.append(bytes(t))
            else:
                flat.extend(t)
        prices_step = end_of_block.prices_step
        if self.pins:
            # Test-only: pin marks right after the prices step (before triggers), by
            # wrapping the step the pipeline calls by name.
            def pinned(ws: Any, time_ms: int) -> list[Any]:
                return prices_step(ws, time_ms) + self._pin_step(ws, time_ms)

            end_of_block.prices_step = pinned  # type: ignore[assignment]
        try:
            executed = self.p.block(flat, advance_ms=advance_ms if advance_ms is not None else self.advance_ms)
        finally:
            end_of_block.prices_step = prices_step  # type: ignore[assignment]
        result = BlockResult.from_events(executed.height, executed.events)
        self.history.append(result)
        return result

    def _pin_step(self, ws: Any, time_ms: int) -> list[Any]:
        for m, price in sorted(self.pins.items()):
            key = keys.market_state_key(m)
            ws.put(key, msgspec.structs.replace(ws.get(key), mark_price=price))
        return []

    def one(self, name: str, action: Any) -> TxResult:
        """Sign ``action`` as ``name`` and produce a one-transaction block; its result."""
        return self.block(self.tx(name, action))[0]

    def set_mark(self, market: int, price: int) -> None:
        """Pin ``market``'s mark from the next block on (see the module docstring)."""
        self.pins[market] = price

    def unpin(self, market: int | None = None) -> None:
        if market is None:
            self.pins.clear()
        else:
            self.pins.pop(market, None)

    def move_mark(self, market: int, price: int) -> BlockResult:
        """Pin the mark at ``price`` and produce an empty block: triggers see the new mark."""
        self.set_mark(market, price)
        return self.block()

    def oracle_update(
        self,
        prices: dict[int, int],
        publisher: str | None = None,
        publishers: tuple[str, ...] = ("oracle-1", "oracle-2", "oracle-3"),
    ) -> BlockResult:
        """Publish oracle prices (market -> price units) in one block, the non-test way: every publisher
        posts (the oracle moves only with a fresh majority, protocol §11.2); ``publisher`` posts alone."""
        action = A.OracleUpdate(
            prices=[A.OraclePrice(market=m, oracle_price=p, external_price=0) for m, p in sorted(prices.items())]
        )
        names = (publisher,) if publisher is not None else publishers
        return self.block([self.tx(n, action) for n in names])

    # ------------------------------------------------------------ collateral
    def deposit_tx(self, name: str | bytes, amount_usdc: int | str, ref: int = 0) -> bytes:
        return self.tx("bridge", A.Deposit(to=self.addr(name), amount=usdc(amount_usdc), ref=ref))

    def fund(self, **amounts_usdc: int | str) -> BlockResult:
        """Deposit whole USDC to each named account in one block: ``c.fund(alice=1000)``."""
        r = self.block([self.deposit_tx(n, a, ref=i) for i, (n, a) in enumerate(sorted(amounts_usdc.items()))])
        assert r.all_ok, r.codes()
        return r

    def withdraw(self, name: str, amount_micro: int) -> TxResult:
        return self.one(name, A.Withdraw(amount=amount_micro, destination=self.addr(name)))

    def transfer(self, name: str, to: str | bytes, amount_micro: int) -> TxResult:
        return self.one(name, A.Transfer(to=self.addr(to), amount=amount_micro))

    # ------------------------------------------------------------ orders: transactions
    def order_tx(
        self,
        name: str,
        market: int,
        is_buy: bool,
        price: int,
        size: int,
        tif: int | str = GTC,
        *,
        reduce_only: bool = False,
        cloid: int = 0,
    ) -> bytes:
        tif = TIFS[tif] if isinstance(tif, str) else tif
        return self.tx(
            name,
            A.PlaceOrder(
                market=market, is_buy=is_buy, price=price, size=size, tif=tif, reduce_only=reduce_only, cloid=cloid
            ),
        )

    def market_tx(
        self,
        name: str,
        market: int,
        is_buy: bool,
        size: int,
        slippage_bps: int = 500,
        *,
        reduce_only: bool = False,
        cloid: int = 0,
    ) -> bytes:
        return self.tx(
            name,
            A.MarketOrder(
                market=market, is_buy=is_buy, size=size, slippage_bps=slippage_bps, reduce_only=reduce_only, cloid=cloid
            ),
        )

    def trigger_tx(
        self,
        name: str,
        market: int,
        is_buy: bool,
        size: int,
        trigger_price: int,
        *,
        tp: bool,
        limit_price: int = 0,
        reduce_only: bool = True,
        cloid: int = 0,
    ) -> bytes:
        return self.tx(
            name,
            A.TriggerOrder(
                market=market,
                is_buy=is_buy,
                size=size,
                trigger_price=trigger_price,
                is_take_profit=tp,
                limit_price=limit_price,
                reduce_only=reduce_only,
                cloid=cloid,
            ),
        )

    def cancel_tx(self, name: str, market: int, oid: int) -> bytes:
        return self.tx(name, A.Cancel(market=market, oid=oid))

    def cancel_cloid_tx(self, name: str, market: int, cloid: int) -> bytes:
        return self.tx(name, A.CancelByCloid(market=market, cloid=cloid))

    def modify_tx(self, name: str, market: int, oid: int, price: int, size: int) -> bytes:
        return self.tx(name, A.Modify(market=market, oid=oid, price=price, size=size))

    # ------------------------------------------------------------ orders: one-transaction blocks
    def place(
        self,
        name: str,
        market: int,
        is_buy: bool,
        price: int,
        size: int,
        tif: int | str = GTC,
        *,
        reduce_only: bool = False,
        cloid: int = 0,
    ) -> TxResult:
        return self.block(self.order_tx(name, market, is_buy, price, size, tif, reduce_only=reduce_only, cloid=cloid))[
            0
        ]

    def buy(self, name: str, market: int, price: int, size: int, tif: int | str = GTC, **kw: Any) -> TxResult:
        return self.place(name, market, BUY, price, size, tif, **kw)

    def sell(self, name: str, market: int, price: int, size: int, tif: int | str = GTC, **kw: Any) -> TxResult:
        return self.place(name, market, SELL, price, size, tif, **kw)

    def market(self, name: str, market: int, is_buy: bool, size: int, slippage_bps: int = 500, **kw: Any) -> TxResult:
        return self.block(self.market_tx(name, market, is_buy, size, slippage_bps, **kw))[0]

    def trigger(
        self, name: str, market: int, is_buy: bool, size: int, trigger_price: int, *, tp: bool, **kw: Any
    ) -> TxResult:
        return self.block(self.trigger_tx(name, market, is_buy, size, trigger_price, tp=tp, **kw))[0]

    def cancel(self, name: str, market: int, oid: int) -> TxResult:
        return self.block(self.cancel_tx(name, market, oid))[0]

    def cancel_cloid(self, name: str, market: int, cloid: int) -> TxResult:
        return self.block(self.cancel_cloid_tx(name, market, cloid))[0]

    def modify(self, name: str, market: int, oid: int, price: int, size: int) -> TxResult:
        return self.block(self.modify_tx(name, market, oid, price, size))[0]

    def leverage(self, name: str, market: int, leverage: int, *, cross: bool = True) -> TxResult:
        return self.one(name, A.UpdateLeverage(market=market, leverage=leverage, is_cross=cross))

    def iso_margin(self, name: str, market: int, delta_micro: int) -> TxResult:
        return self.one(name, A.UpdateIsolatedMargin(market=market, delta=delta_micro))

    def trade(self, buyer: str, seller: str, market: int, price: int, size: int) -> BlockResult:
        """``seller`` rests a GTC ask, ``buyer`` takes it with an IOC bid (one block); both must succeed."""
        r = self.block(
            self.order_tx(seller, market, SELL, price, size, GTC), self.order_tx(buyer, market, BUY, price, size, IOC)
        )
        assert r.all_ok, [(t.code, t.receipt.message) for t in r.txs]
        assert sum(f.size for f in r.fills) == size, r.fills
        return r

    # ------------------------------------------------------------ reading state
    def view(self):
        """A fresh read view of committed state (``WorkingState``)."""
        return self.p.engine.view()

    def get(self, key: bytes) -> Any:
        return self.view().get(key)

    def scan(self, prefix: bytes) -> list[tuple[bytes, Any]]:
        """Committed records under ``prefix`` (decoded), in key order."""
        return [(k, msgspec.msgpack.decode(v, type=record_type(k))) for k, v in self.p.engine.store.scan_prefix(prefix)]

    def chain(self) -> ChainRecord:
        return self.get(keys.CHAIN_KEY)

    def account(self, name: str | bytes) -> Account:
        rec = self.get(keys.account_key(self.addr(name)))
        return rec if rec is not None else Account(cash=0, open_markets=[], open_orders=0)

    def cash(self, name: str | bytes) -> int:
        """Cross cash (micro-USDC)."""
        return self.account(name).cash

    def position(self, name: str | bytes, market: int) -> Position | None:
        return self.get(keys.position_key(market, self.addr(name)))

    def size(self, name: str | bytes, market: int) -> int:
        pos = self.position(name, market)
        return pos.size if pos is not None else 0

    def cost(self, name: str | bytes, market: int) -> int:
        pos = self.position(name, market)
        return pos.cost if pos is not None else 0

    def iso_cash(self, name: str | bytes, market: int) -> int:
        pos = self.position(name, market)
        return pos.iso_cash if pos is not None else 0

    def health(self, name: str | bytes):
        return cross_health(self.view(), self.addr(name))

    def value(self, name: str | bytes) -> int:
        """Cross account value at the current marks."""
        return self.health(name).value

    def fee_pool(self) -> int:
        return self.cash(FEE_POOL)

    def insurance(self) -> int:
        return self.cash(INSURANCE_FUND)

    def market_state(self, market: int) -> MarketState:
        return self.get(keys.market_state_key(market))

    def mark(self, market: int) -> int:
        return self.market_state(market).mark_price

    def open_interest(self, market: int) -> int:
        return self.market_state(market).open_interest

    def book(self, market: int, is_buy: bool) -> list[Order]:
        """Resting orders on one side, best first (price-time priority)."""
        return [rec for _k, rec in self.scan(keys.book_side_prefix(market, is_buy))]

    def book_keys(self, market: int, is_buy: bool) -> list[tuple[bytes, Order]]:
        return self.scan(keys.book_side_prefix(market, is_buy))

    def best(self, market: int, is_buy: bool) -> int | None:
        side = self.book(market, is_buy)
        return side[0].price if side else None

    def triggers(self, market: int) -> list[Trigger]:
        return [rec for _k, rec in self.scan(keys.NS_TRIGGER + keys.u32(market))]

    def order(self, oid: int) -> Order | Trigger | None:
        """An open order (resting or trigger) by id, or None."""
        loc = self.get(keys.order_loc_key(oid))
        return None if loc is None else self.get(loc.key)

    def trading_snapshot(self) -> dict[bytes, Any]:
        """Everything trading touches: accounts, positions, resting and trigger orders, their
        locators and client ids, plus the order-id counter and deposit totals. Block height,
        time, nonces and price EMAs are left out (every block moves them), so equal snapshots
        before and after a rejected transaction mean "nothing changed"."""
        snap: dict[bytes, Any] = {}
        for ns in (
            keys.NS_ACCOUNT,
            keys.NS_POSITION,
            keys.NS_ORDER,
            keys.NS_TRIGGER,
            keys.NS_ORDER_LOC,
            keys.NS_CLOID,
            keys.NS_AGENT,
        ):
            snap.update(self.scan(ns))
        ch = self.chain()
        snap[b"next_oid"] = ch.next_oid
        snap[b"totals"] = (ch.deposits, ch.withdrawals)
        for m in range(ch.market_count):
            ms = self.market_state(m)
            snap[b"market" + keys.u32(m)] = (ms.open_interest, ms.last_trade_price)
        return snap

    # ------------------------------------------------------------ invariants
    def total_collateral(self) -> int:
        """Σ account cash (system accounts included) + Σ isolated ``iso_cash`` + Σ market ``funding_pool``."""
        cash = sum(a.cash for _k, a in self.scan(keys.NS_ACCOUNT))
        iso = sum(p.iso_cash for _k, p in self.scan(keys.NS_POSITION))
        pools = sum(ms.funding_pool for _k, ms in self.scan(keys.NS_MARKET_STATE))
        return cash + iso + pools

    def check_funding(self) -> None:
        """Lazy funding is exactly zero-sum (protocol §11.6; ``invariants.check_funding``)."""
        from clearinghouse.tools.invariants import check_funding
        from clearinghouse.tools.invariants import snapshot as store_snapshot

        problems = check_funding(store_snapshot(self.p.engine.store.iter_all()))
        assert not problems, problems

    def check_conservation(self) -> None:
        """deposits - withdrawals == Σ cash + Σ iso_cash + Σ funding_pool (protocol §1.1)."""
        ch = self.chain()
        assert ch.deposits - ch.withdrawals == self.total_collateral(), (
            ch.deposits,
            ch.withdrawals,
            self.total_collateral(),
        )

    def long_short(self) -> dict[int, tuple[int, int]]:
        """market -> (total long size, total short size) over all positions."""
        out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for k, pos in self.scan(keys.NS_POSITION):
            m = int.from_bytes(k[1:5], "big")
            if pos.size > 0:
                out[m][0] += pos.size
            elif pos.size < 0:
                out[m][1] += -pos.size
        return {m: (v[0], v[1]) for m, v in out.items()}

    def check_open_interest(self) -> None:
        """Per market: total long == total short == MarketState.open_interest."""
        ls = self.long_short()
        for m in range(self.chain().market_count):
            longs, shorts = ls.get(m, (0, 0))
            assert longs == shorts == self.open_interest(m), (m, longs, shorts, self.open_interest(m))

    def check_invariants(self) -> None:
        self.check_conservation()
        self.check_funding()
        self.check_open_interest()
