"""The whole clearinghouse as a hypothesis state machine (protocol §1.1).

Each example builds a chain with ``Producer(demo_genesis(...))`` (policy and
insurance fund drawn per example), funds named wallets through bridge
deposits, and then runs rules that each produce one block of signed
transactions: deposits, withdrawals, transfers, every order type (GTC, IOC,
FOK and ALO limits, market, TP/SL triggers), cancels by order id (ids learnt
from ``OrderStatus`` events) and by client id, modifies, leverage and margin
mode, isolated margin moves, agents, oracle moves with sudden +-50% crashes
and time jumps across funding hours, wash trades in thin books, publisher
subsets (one posting an outlier) and stale publishers. Parameters are drawn valid and invalid
alike: a rejection is fine, as long as it changes nothing but its receipt.

After every block:

* every invariant of ``clearinghouse.tools.invariants.check_all`` holds on the
  producer's committed store (conservation, open interest, solvency,
  bookkeeping, uncrossed book);
* every mark lies within its market's band around the oracle; without a
  fresh majority of publishers the oracle and external price hold; no single
  publisher (a minority of three) moves either beyond what the others' fresh
  words and the held price say (protocol §11.2, §11.3);
* every transaction has exactly one receipt, with a known typed code;
* a block made only of rejected transactions leaves state exactly as an empty
  block at the same height and time would (same changes, same root, same
  end-of-block events);
* an account with no position and no open order at the start of the block,
  that no transaction in the block touched (signer, agent's owner, deposit or
  transfer recipient), ends the block with the same cash and still no
  position: nobody without a position loses anything to ADL, funding or any
  socialisation; every ADL counterparty held a position in that market;
  funding is only paid on open positions.

At teardown the log the producer wrote is replayed into an ``LmdbStore``
(same root as the in-memory store) and verified by ``python -m
clearinghouse.tools.cli verify LOG --json`` in a fresh process with a different
``PYTHONHASHSEED`` (same root again).

Examples: ``default`` profile 30, ``ci`` 300, ``soak`` 2000 (see
``EXAMPLES``); ``STATE_MACHINE_EXAMPLES`` overrides; ``stateful_step_count`` 20 in all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from typing import Any

import msgspec
import pytest
from conftest import REPO_ROOT, subprocess_env
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, multiple, precondition, rule
from index_audit import AUDIT, audited, full_walk

from clearinghouse.chain.engine import Engine, replay_log
from clearinghouse.chain.producer import Producer
from clearinghouse.spec import errors as E
from clearinghouse.spec.constants import NO_TX
from clearinghouse.spec.events import Fill, FundingPaid, OrderStatus, PositionTransfer, Receipt
from clearinghouse.spec.state.accounts import get_account
from clearinghouse.spec.state.keys import (
    CHAIN_KEY,
    FEE_POOL,
    INSURANCE_FUND,
    market_spec_key,
    market_state_key,
    oracle_sub_key,
    position_key,
)
from clearinghouse.spec.trading.margin import cross_health
from clearinghouse.spec.waterfall.events import Clawback
from clearinghouse.spec.waterfall.policies import POLICIES
from clearinghouse.tools.demo import USDC, demo_genesis
from clearinghouse.tools.invariants import check_all
from state import LmdbStore
from tx import actions as A
from tx.encoding import encode

BTC, ETH = 0, 1
MARKETS = (BTC, ETH)
TRADERS = ("t0", "t1", "t2", "t3", "t4")
MAKERS = ("mm-a", "mm-b")
ORACLES = ("oracle-1", "oracle-2", "oracle-3")
OUTSIDER = "mallory"
"""Never funded, never an authority: everything it signs for others must fail."""
MAX_LEVERAGE = {BTC: 50, ETH: 25}
HOUR_MS = 3_600_000

EXAMPLES = {"default": 30, "ci": 300, "soak": 2000}
POLICY_NAMES = sorted(POLICIES)
"""Every genesis policy: the machine runs once per policy (``MACHINES``)."""
SPLIT_GROWTH = (13, 10)
"""Outside the soak, the profile's examples are split over the policies with 30% more in total
(CI: 300 -> 6 x 65 = 390), so CI's state-machine time grows by about 30% for three more policies;
``--soak`` runs the full count under every policy."""
"""Examples per profile. CI: 300 examples x 20 steps (about 0.4 s of CPU each with the teardown's
LMDB replay and subprocess verify: about 2 minutes of CPU; ``.ci/run`` asks for the same 300 through
``STATE_MACHINE_EXAMPLES``). The soak (``--soak``, or ``tools/soak.py --minutes N`` for fresh seeds)
is what reaches the rare paths: CI's 100 examples never found issue 14's bad debt."""
STEPS = 20

KNOWN_CODES = {"OK", E.InvalidTransaction.code} | {cls.code for cls in E.InvalidTransaction.__subclasses__()}
ADL_KINDS = ("adl", "deficit_cover")
"""PositionTransfer reasons that close a winner (protocol §10.9)."""

STATS: dict[str, int] = {
    "examples": 0,
    "blocks": 0,
    "txs": 0,
    "accepted": 0,
    "rejected": 0,
    "blocks_with_rejections": 0,
    "all_rejected_blocks": 0,
    "fills": 0,
    "adl_fills": 0,
    "liquidations": 0,
    "subprocess_verifies": 0,
}


CODES: Counter = Counter()
RULES: Counter = Counter()


def story(events: list[Any], kept: list[int] | None) -> list[Any]:
    """A block's events without receipts, transaction indexes mapped back to the full block's."""
    out = []
    for e in events:
        if isinstance(e, Receipt):
            continue
        if kept is not None and getattr(e, "tx_index", NO_TX) != NO_TX:
            e = msgspec.structs.replace(e, tx_index=kept[e.tx_index])
        out.append(e)
    return out


def _profile_examples() -> int:
    if os.environ.get("STATE_MACHINE_EXAMPLES"):
        return int(os.environ["STATE_MACHINE_EXAMPLES"])
    name = settings.get_current_profile_name()
    return EXAMPLES.get(name, settings().max_examples)


# ---------------------------------------------------------------- prices and sizes
def five_sig(p: int) -> int:
    """Round a positive price down to at most 5 significant figures (always a valid tick)."""
    p = max(1, p)
    digits = len(str(p))
    if digits > 5:
        q = 10 ** (digits - 5)
        p = p // q * q
    return p


def price_near(mark: int, offset_bps: int) -> int:
    return five_sig(mark * (10_000 + offset_bps) // 10_000)


def size_for(notional_usdc: int, price: int) -> int:
    """Lots giving about ``notional_usdc`` at ``price`` (0 if below one lot: decodes as invalid)."""
    return notional_usdc * USDC // max(price, 1)


offsets = st.one_of(st.integers(-150, 150), st.integers(-1_200, 1_200), st.sampled_from([-9_600, 9_600, 0]))
notionals = st.one_of(st.integers(5, 5_000), st.integers(5_000, 400_000), st.sampled_from([0, 9, 10, 2**40]))
amounts = st.one_of(
    st.integers(1, 5_000 * USDC), st.integers(5_000 * USDC, 2_000_000 * USDC), st.sampled_from([0, 2**63 - 1])
)
tifs = st.sampled_from([A.TIF_GTC, A.TIF_IOC, A.TIF_FOK, A.TIF_ALO])
TIF = {"GTC": A.TIF_GTC, "IOC": A.TIF_IOC, "FOK": A.TIF_FOK, "ALO": A.TIF_ALO}


class ClearinghouseMachine(RuleBasedStateMachine):
    accounts = Bundle("accounts")
    POLICY: str | None = None
    """The genesis policy of every example (a subclass per policy, ``MACHINES``); None: drawn."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="ch-statemachine-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.log_path = os.path.join(self.tmp, "chain.log")
        self.p: Producer | None = None
        self.wallets: dict[str, Any] = {}
        self.names: dict[bytes, str] = {}
        self.orders: dict[int, tuple[bytes, int]] = {}
        """Open orders learnt from OrderStatus events: oid -> (owner, market)."""
        self.cloids: list[tuple[bytes, int, int]] = []
        """(owner, market, cloid) of orders placed with a client id (may be stale)."""
        self.next_cloid = 1
        self.agent_owner: dict[bytes, bytes] = {}
        self.accepted: list[bytes] = []
        """Accepted transaction bytes, for replay attempts."""
        STATS["examples"] += 1
        self.example_no = STATS["examples"]

    # ------------------------------------------------------------ plumbing
    def wallet(self, name: str) -> Any:
        w = self.wallets.get(name)
        if w is None:
            w = self.wallets[name] = self.p.wallet(name)
            self.names[w.address] = name
        return w

    def exists(self, name: str) -> bool:
        """Has this key an account (the only keys that may act, authorities aside)?"""
        from clearinghouse.spec.state.keys import account_key

        return self.view.get(account_key(self.addr(name))) is not None

    def addr(self, name: str) -> bytes:
        return self.wallet(name).address

    @property
    def view(self) -> Any:
        return self.p.engine.view()

    def mark(self, market: int) -> int:
        return self.view.get(market_state_key(market)).mark_price

    def oracle(self, market: int) -> int:
        return self.view.get(market_state_key(market)).oracle_price

    def next_time(self, advance_ms: int = 1000) -> int:
        return self.p.time_ms + advance_ms

    def sign(self, name: str, action: Any, t: int, nonce: int | None = None) -> bytes:
        return self.wallet(name).sign(action, t, nonce)

    def fresh_cloid(self) -> int:
        self.next_cloid += 1
        return self.next_cloid

    def _account_state(self, addr: bytes, view: Any) -> tuple[int, tuple[int, ...], int]:
        acct = get_account(view, addr)
        return acct.cash, tuple(acct.open_markets), acct.open_orders

    def _involved(self, txs: list[bytes]) -> set[bytes]:
        """Every address a block's transactions could change: signers, agents' owners, recipients."""
        from tx.encoding import decode_transaction
        from tx.signing import recover_signer, signing_digest

        out: set[bytes] = set()
        chain = self.view.get(CHAIN_KEY)
        for raw in txs:
            try:
                tx = decode_transaction(raw)
                signer = recover_signer(signing_digest(chain.chain_id, tx.nonce, encode(tx.action)), tx.signature)
            except Exception:  # undecodable or unsignable: rejected, touches nobody
                continue
            out.add(signer)
            if signer in self.agent_owner:
                out.add(self.agent_owner[signer])
            to = getattr(tx.action, "to", None)
            if to is not None:
                out.add(to)
        return out

    def produce(self, txs: list[bytes], *, advance_ms: int = 1000, expect_all_rejected: bool = False) -> Any:
        """Produce one block and check everything a block must satisfy.

        Steps 40 and 50 run under the test-only full scan of ``index_audit`` (the liquidation
        index never misses a liquidatable or below-zero unit); the dry runs walk every unit in
        state (the rule itself) and the real run walks the index: same changes, same events.
        """
        RULES[sys._getframe(1).f_code.co_name] += 1
        with audited():
            return self._produce(txs, advance_ms=advance_ms, expect_all_rejected=expect_all_rejected)

    def _produce(self, txs: list[bytes], *, advance_ms: int, expect_all_rejected: bool) -> Any:
        engine = self.p.engine
        t = self.next_time(advance_ms)
        height = engine.height + 1
        # A dry run of the block, then of the block without its rejected transactions: the two must
        # change state identically and tell the same story (protocol §6.5: a rejected transaction
        # changes nothing but its receipt). With everything rejected, the second is an empty block.
        with full_walk():
            dry = engine.execute(height, t, txs)
        engine.reset_index()
        dry_receipts = sorted((e for e in dry.events if isinstance(e, Receipt)), key=lambda r: r.tx_index)
        kept = [r.tx_index for r in dry_receipts if r.ok]
        if len(kept) < len(txs):
            with full_walk():
                only_ok = engine.execute(height, t, [txs[i] for i in kept])
            engine.reset_index()
            assert all(r.ok for r in only_ok.events if isinstance(r, Receipt)), (
                "a transaction's outcome depended on a rejected one"
            )
            assert only_ok.changes == dry.changes, "rejected transactions changed state"
            assert engine.preview_root(only_ok) == engine.preview_root(dry)
            assert story(only_ok.events, kept) == story(dry.events, None), "rejected transactions changed the events"

        before_view = self.view
        prices_before = self._prices()
        watched = set(self.names) | {INSURANCE_FUND, FEE_POOL}
        before = {a: self._account_state(a, before_view) for a in watched}
        positions_before = {
            (m, a)
            for a in watched
            for m in MARKETS
            if (pos := before_view.get(position_key(m, a))) is not None and pos.size != 0
        }
        involved = self._involved(txs)

        executed = self.p.block(txs, time_ms=t)
        assert executed.changes == dry.changes and executed.events == dry.events, (
            "the same block executed twice differs (the dry run walked every unit, this one the liquidation index)"
        )
        self._check_oracle(prices_before, t)

        receipts = [e for e in executed.events if isinstance(e, Receipt)]
        assert sorted(r.tx_index for r in receipts) == list(range(len(txs))), "one receipt per transaction"
        for r in receipts:
            CODES[(r.action, r.code)] += 1
            assert r.code in KNOWN_CODES, f"untyped rejection {r.code}: {r.message}"
            assert r.ok == (r.code == "OK")
        accepted = [r for r in receipts if r.ok]
        STATS["blocks"] += 1
        STATS["txs"] += len(txs)
        STATS["accepted"] += len(accepted)
        STATS["rejected"] += len(receipts) - len(accepted)
        if len(accepted) < len(txs):
            STATS["blocks_with_rejections"] += 1
        for r in accepted:
            self.accepted.append(txs[r.tx_index])
        if expect_all_rejected:
            assert not accepted, [(r.action, r.code, r.message) for r in accepted]
        if txs and not accepted:
            STATS["all_rejected_blocks"] += 1

        after_view = self.view
        # Nobody without a position and without orders, untouched by the block, changes.
        for a, (cash, markets, open_orders) in before.items():
            if markets or open_orders or a in involved or a in (INSURANCE_FUND, FEE_POOL):
                continue
            cash2, markets2, _ = self._account_state(a, after_view)
            assert (cash2, markets2) == (cash, markets), (
                f"{self.names.get(a, a.hex())} had no position and no tx, but cash {cash} -> {cash2}, markets {markets2}"
            )
        traded: set[tuple[int, bytes]] = set()
        for ev in executed.events:
            if isinstance(ev, Fill):
                STATS["fills"] += 1
                traded.add((ev.market, ev.taker))
                traded.add((ev.market, ev.maker))
                if ev.liquidation:
                    STATS["liquidations"] += 1
            elif isinstance(ev, PositionTransfer):
                if ev.reason in ADL_KINDS:
                    STATS["adl_fills"] += 1
                    # The winner: ADL's counterparty, or the deficit cover's closing side.
                    winner = ev.counterparty if ev.reason == "adl" else ev.closing
                    assert (ev.market, winner) in positions_before or (ev.market, winner) in traded, (
                        "ADL hit an account without a position"
                    )
                else:
                    traded.add((ev.market, ev.closing))
                    traded.add((ev.market, ev.counterparty))
            elif isinstance(ev, Clawback):
                STATS["clawbacks"] = STATS.get("clawbacks", 0) + 1
                assert any(a == ev.account for _m, a in positions_before | traded), (
                    "clawback charged an account without a position"
                )
                assert 0 < ev.amount <= ev.capacity <= ev.value_before, "clawback took more than profit or value"
            elif isinstance(ev, FundingPaid):
                assert ev.size != 0, "funding charged on a flat position"
            elif isinstance(ev, OrderStatus):
                if ev.status in ("resting", "trigger_pending"):
                    self.orders[ev.oid] = (ev.owner, ev.market)
                elif ev.status in ("filled", "canceled", "triggered"):
                    self.orders.pop(ev.oid, None)
        self._check_bad_debt(executed)
        for ev in executed.events:  # agents approved in this block
            if type(ev).__name__ == "AgentSet":
                if ev.approved:
                    self.agent_owner[ev.agent] = ev.owner
                else:
                    self.agent_owner.pop(ev.agent, None)
        return executed

    def _prices(self) -> dict[int, tuple[int, int]]:
        """market -> (oracle, external) in committed state."""
        view = self.view
        return {
            m: (view.get(market_state_key(m)).oracle_price, view.get(market_state_key(m)).external_price)
            for m in MARKETS
        }

    def _check_oracle(self, before: dict[int, tuple[int, int]], t: int) -> None:
        """Protocol §11.2 after every block: without a fresh majority the oracle and external price hold;
        and no single publisher (a minority of three) places either outside the range of what the other
        publishers' fresh words and the held price say (a stale slot votes the held price)."""
        view = self.view
        chain = view.get(CHAIN_KEY)
        pubs = sorted(chain.oracle_publishers)
        for m in MARKETS:
            state = view.get(market_state_key(m))
            held_o, held_x = before[m]
            fresh = {
                p: sub
                for p in pubs
                if (sub := view.get(oracle_sub_key(m, p))) is not None and t - sub.time_ms < chain.oracle_fresh_ms
            }
            if 2 * len(fresh) <= len(pubs):
                assert (state.oracle_price, state.external_price) == (held_o, held_x), (
                    f"market {m}: the oracle moved without a fresh majority"
                )
            if len(pubs) < 3:
                continue
            fill = held_x if held_x > 0 else state.oracle_price
            for p in pubs:
                others = [sub.oracle_price for q, sub in fresh.items() if q != p] + [held_o]
                assert min(others) <= state.oracle_price <= max(others), (
                    f"market {m}: publisher {p.hex()} alone moved the oracle"
                )
                if state.external_price:
                    ext = [sub.external_price for q, sub in fresh.items() if q != p and sub.external_price] + [fill]
                    assert min(ext) <= state.external_price <= max(ext), (
                        f"market {m}: publisher {p.hex()} alone moved the external price"
                    )

    # ------------------------------------------------------------ set-up
    @initialize(
        target=accounts,
        policy=st.sampled_from(POLICY_NAMES),
        fund=st.sampled_from([0, 1_000 * USDC, 50_000 * USDC]),
        mm_cash=st.sampled_from([200_000 * USDC, 5_000_000 * USDC]),
        depth=st.integers(1, 4),
        quote_usdc=st.sampled_from([20_000, 200_000]),
        traders=st.lists(st.sampled_from(TRADERS), min_size=1, max_size=3, unique=True),
        trader_cash=st.sampled_from([2_000 * USDC, 20_000 * USDC, 200_000 * USDC]),
        data=st.data(),
    )
    def setup(
        self,
        policy: str,
        fund: int,
        mm_cash: int,
        depth: int,
        quote_usdc: int,
        traders: list[str],
        trader_cash: int,
        data: Any,
    ) -> Any:
        self.quote_usdc = quote_usdc
        policy = self.POLICY or policy
        STATS[f"policy:{policy}"] = STATS.get(f"policy:{policy}", 0) + 1
        self.p = Producer(demo_genesis(policy=policy, insurance_fund=fund), self.log_path, overwrite=True)
        for n in TRADERS + MAKERS + ORACLES + ("bridge", OUTSIDER):
            self.wallet(n)
        t = self.next_time()
        funded = [(n, mm_cash) for n in MAKERS] + [(n, trader_cash) for n in traders]
        txs = [self.sign("bridge", A.Deposit(to=self.addr(n), amount=a, ref=i), t) for i, (n, a) in enumerate(funded)]
        txs += self._oracle_txs({BTC: 0, ETH: 0}, t, ORACLES, external="same")
        ex = self.produce(txs)
        assert all(r.ok for r in ex.events if isinstance(r, Receipt))
        self._quote(depth)
        self._open_positions(data)
        return multiple(*traders)

    def _open_positions(self, data: Any) -> None:
        """Every funded trader opens a leveraged position (cross or isolated) against the makers."""
        t = self.next_time()
        txs = []
        for name in TRADERS:
            if get_account(self.view, self.addr(name)).cash <= 0:
                continue
            market = data.draw(st.sampled_from(MARKETS), label=f"{name} market")
            is_buy = data.draw(st.booleans(), label=f"{name} buys")
            lev = min(data.draw(st.sampled_from([3, 10, 20, 25, 50]), label=f"{name} leverage"), MAX_LEVERAGE[market])
            is_cross = data.draw(st.booleans(), label=f"{name} cross")
            pct = data.draw(st.sampled_from([30, 60, 90]), label=f"{name} pct")
            mark = self.mark(market)
            value = cross_health(self.view, self.addr(name)).value
            txs.append(self.sign(name, A.UpdateLeverage(market=market, leverage=lev, is_cross=is_cross), t))
            txs.append(
                self.sign(
                    name,
                    A.PlaceOrder(
                        market=market,
                        is_buy=is_buy,
                        price=price_near(mark, 150 if is_buy else -150),
                        size=value * lev * pct // 100 // mark,
                        tif=A.TIF_IOC,
                        reduce_only=False,
                        cloid=0,
                    ),
                    t,
                )
            )
        self.produce(txs)

    def _quote(self, depth: int) -> None:
        """Both makers quote both markets, ``depth`` levels a side, around the mark."""
        t = self.next_time()
        txs = []
        for i, mm in enumerate(MAKERS):
            for m in MARKETS:
                mark = self.mark(m)
                for lvl in range(1, depth + 1):
                    off = 10 * lvl + 5 * i
                    for is_buy, sign_ in ((True, -1), (False, 1)):
                        px = price_near(mark, sign_ * off)
                        txs.append(
                            self.sign(
                                mm,
                                A.PlaceOrder(
                                    market=m,
                                    is_buy=is_buy,
                                    price=px,
                                    size=max(1, size_for(self.quote_usdc, px)),
                                    tif=A.TIF_GTC,
                                    reduce_only=False,
                                    cloid=0,
                                ),
                                t,
                            )
                        )
        self.produce(txs)

    def _oracle_txs(
        self, pct: dict[int, int], t: int, publishers: tuple[str, ...], external: str = "same"
    ) -> list[bytes]:
        prices = []
        for m, change in sorted(pct.items()):
            initial = demo_genesis().markets[m].initial_price
            new = max(1, self.oracle(m) * (100 + change) // 100)
            if not initial // 1000 <= new <= initial * 1000:
                new = initial
            ext = {"same": new, "none": 0, "off": max(1, new * 101 // 100)}[external]
            prices.append(A.OraclePrice(market=m, oracle_price=new, external_price=ext))
        return [self.sign(pub, A.OracleUpdate(prices=prices), t) for pub in publishers]

    # ------------------------------------------------------------ collateral
    @rule(
        target=accounts,
        name=st.sampled_from(TRADERS),
        amount=st.one_of(st.integers(100 * USDC, 300_000 * USDC), amounts),
    )
    def deposit(self, name: str, amount: int) -> str:
        t = self.next_time()
        self.produce([self.sign("bridge", A.Deposit(to=self.addr(name), amount=amount, ref=self.example_no), t)])
        return name

    @rule(
        src=accounts,
        dst=st.one_of(accounts, st.sampled_from(MAKERS + (OUTSIDER,))),
        amount=amounts,
        fraction=st.sampled_from([None, 1, 2, 10]),
        how=st.sampled_from(["withdraw", "transfer", "to_fund", "to_self"]),
    )
    def withdraw_or_transfer(self, src: str, dst: str, amount: int, fraction: int | None, how: str) -> None:
        if fraction:
            amount = max(1, get_account(self.view, self.addr(src)).cash // fraction)
        t = self.next_time()
        if how == "withdraw":
            a = A.Withdraw(amount=amount, destination=self.addr(src))
        else:
            to = {"transfer": self.addr(dst), "to_fund": INSURANCE_FUND, "to_self": self.addr(src)}[how]
            a = A.Transfer(to=to, amount=amount)
        existed = self.exists(src)
        ex = self.produce([self.sign(src, a, t)])
        if how in ("to_fund", "to_self"):
            assert (
                self.codes(ex) in (["RESERVED_ACCOUNT"], ["UNAUTHORIZED"], ["DECODE"])
                or amount == 0
                or (not existed and self.codes(ex) == ["NO_SUCH_ACCOUNT"])
            )

    # ------------------------------------------------------------ orders
    @rule(
        name=accounts,
        market=st.sampled_from(MARKETS),
        is_buy=st.booleans(),
        how=st.sampled_from(["market", "GTC", "IOC", "FOK", "ALO"]),
        sizing=st.sampled_from(["leverage", "leverage", "notional", "off_tick"]),
        leverage=st.sampled_from([1, 3, 10, 20, 25, 50]),
        pct=st.sampled_from([10, 50, 90, 100, 200]),
        is_cross=st.booleans(),
        offset=offsets,
        notional=notionals,
        reduce_only=st.booleans(),
        cloid=st.booleans(),
    )
    def order(
        self,
        name: str,
        market: int,
        is_buy: bool,
        how: str,
        sizing: str,
        leverage: int,
        pct: int,
        is_cross: bool,
        offset: int,
        notional: int,
        reduce_only: bool,
        cloid: bool,
    ) -> None:
        """One order of any type. ``leverage`` sizing first sets leverage and margin mode in the same
        block, then takes about ``pct``% of what the account can carry; ``notional`` sizing places
        ``notional`` USDC at ``offset`` bps from the mark; ``off_tick`` adds one price unit."""
        t = self.next_time()
        mark = self.mark(market)
        txs = []
        if sizing == "leverage":
            lev = min(leverage, MAX_LEVERAGE[market])
            value = max(cross_health(self.view, self.addr(name)).value, 0)
            size = value * lev * pct // 100 // mark
            offset = abs(offset) if is_buy else -abs(offset)
            txs.append(self.sign(name, A.UpdateLeverage(market=market, leverage=lev, is_cross=is_cross), t))
            reduce_only = False
        else:
            size = size_for(notional, mark)
        px = price_near(mark, offset) + (1 if sizing == "off_tick" else 0)
        c = self.fresh_cloid() if cloid else 0
        if c:
            self.cloids.append((self.addr(name), market, c))
        if how == "market":
            txs.append(
                self.sign(
                    name,
                    A.MarketOrder(
                        market=market,
                        is_buy=is_buy,
                        size=size,
                        slippage_bps=min(abs(offset), 5000),
                        reduce_only=reduce_only,
                        cloid=c,
                    ),
                    t,
                )
            )
        else:
            txs.append(
                self.sign(
                    name,
                    A.PlaceOrder(
                        market=market,
                        is_buy=is_buy,
                        price=px,
                        size=size,
                        tif=TIF[how],
                        reduce_only=reduce_only,
                        cloid=c,
                    ),
                    t,
                )
            )
        self.produce(txs)

    @rule(
        name=accounts,
        market=st.sampled_from(MARKETS),
        how=st.sampled_from(["market", "IOC", "GTC", "tp", "sl", "trigger"]),
        offset=st.integers(-2_000, 2_000),
        notional=notionals,
        limit_offset=st.one_of(st.none(), st.integers(-500, 500)),
        is_buy=st.booleans(),
        reduce_only=st.booleans(),
        cloid=st.booleans(),
    )
    def close_or_trigger(
        self,
        name: str,
        market: int,
        how: str,
        offset: int,
        notional: int,
        limit_offset: int | None,
        is_buy: bool,
        reduce_only: bool,
        cloid: bool,
    ) -> None:
        """Reduce-only close of the whole position (market, IOC, resting, TP or SL), or any trigger order."""
        pos = self.view.get(position_key(market, self.addr(name)))
        mark = self.mark(market)
        t = self.next_time()
        if how == "trigger":
            trig = price_near(mark, offset)
            c = self.fresh_cloid() if cloid else 0
            if c:
                self.cloids.append((self.addr(name), market, c))
            limit = 0 if limit_offset is None else price_near(trig, limit_offset)
            a = A.TriggerOrder(
                market=market,
                is_buy=is_buy,
                size=size_for(notional, trig),
                trigger_price=trig,
                is_take_profit=offset % 2 == 0,
                limit_price=limit,
                reduce_only=reduce_only,
                cloid=c,
            )
        else:
            size = abs(pos.size) if pos is not None and pos.size else 1
            is_buy = pos is not None and pos.size < 0
            if how == "market":
                a = A.MarketOrder(market=market, is_buy=is_buy, size=size, slippage_bps=500, reduce_only=True, cloid=0)
            elif how in ("IOC", "GTC"):
                a = A.PlaceOrder(
                    market=market,
                    is_buy=is_buy,
                    price=price_near(mark, 300 if is_buy else -300),
                    size=size,
                    tif=TIF[how],
                    reduce_only=True,
                    cloid=0,
                )
            else:
                # tp: a long sells above the mark, sl below it (mirrored for a short).
                above = (how == "tp") != is_buy
                a = A.TriggerOrder(
                    market=market,
                    is_buy=is_buy,
                    size=size,
                    trigger_price=price_near(mark, abs(offset) // 4 if above else -abs(offset) // 4),
                    is_take_profit=how == "tp",
                    limit_price=0,
                    reduce_only=True,
                    cloid=0,
                )
        self.produce([self.sign(name, a, t)])

    @precondition(lambda self: self.orders or self.cloids)
    @rule(data=st.data(), how=st.sampled_from(["oid", "oid", "cloid", "other", "agent"]))
    def cancel(self, data: Any, how: str) -> None:
        """Cancel by order id (from OrderStatus events) or client id. The owner (or its agent)
        succeeds; anyone else gets ORDER_NOT_FOUND and changes nothing."""
        t = self.next_time()
        if how == "cloid" and self.cloids:
            owner, market, cloid = data.draw(st.sampled_from(self.cloids))
            market = market if data.draw(st.booleans()) else 1 - market
            self.produce([self.sign(self.names[owner], A.CancelByCloid(market=market, cloid=cloid), t)])
            return
        if not self.orders:
            return
        oid = data.draw(st.sampled_from(sorted(self.orders)))
        owner, market = self.orders[oid]
        if how == "other" or owner not in self.names:
            other = data.draw(st.sampled_from([n for n in TRADERS + (OUTSIDER,) if self.addr(n) != owner]))
            action = (
                A.Cancel(market=market, oid=oid)
                if data.draw(st.booleans())
                else A.Modify(market=market, oid=oid, price=self.mark(market), size=1)
            )
            ex = self.produce([self.sign(other, action, t)], expect_all_rejected=True)
            assert self.codes(ex) == ["ORDER_NOT_FOUND" if self.exists(other) else "NO_SUCH_ACCOUNT"]
            return
        signer = self.names[owner]
        agents = [self.names[a] for a, o in self.agent_owner.items() if o == owner and a in self.names]
        if how == "agent" and agents:
            signer = agents[0]
        self.produce([self.sign(signer, A.Cancel(market=market, oid=oid), t)])

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), offset=offsets, notional=notionals)
    def modify(self, data: Any, offset: int, notional: int) -> None:
        oid = data.draw(st.sampled_from(sorted(self.orders)))
        owner, market = self.orders[oid]
        signer = self.names.get(owner, OUTSIDER)
        px = price_near(self.mark(market), offset)
        t = self.next_time()
        self.produce([self.sign(signer, A.Modify(market=market, oid=oid, price=px, size=size_for(notional, px)), t)])

    # ------------------------------------------------------------ leverage and margin
    @rule(
        name=accounts,
        market=st.sampled_from(MARKETS),
        what=st.sampled_from(["leverage", "isolated"]),
        leverage=st.one_of(st.integers(1, 60), st.sampled_from([1, 20, 25, 50, 1000])),
        is_cross=st.booleans(),
        delta=st.one_of(st.integers(-50_000 * USDC, 50_000 * USDC), st.sampled_from([0, -(2**63), 2**63 - 1])),
    )
    def margin_settings(self, name: str, market: int, what: str, leverage: int, is_cross: bool, delta: int) -> None:
        t = self.next_time()
        if what == "leverage":
            existed = self.exists(name)
            ex = self.produce(
                [self.sign(name, A.UpdateLeverage(market=market, leverage=leverage, is_cross=is_cross), t)]
            )
            if leverage > MAX_LEVERAGE[market]:
                assert self.codes(ex) == (["INVALID_LEVERAGE"] if existed else ["NO_SUCH_ACCOUNT"])
        else:
            self.produce([self.sign(name, A.UpdateIsolatedMargin(market=market, delta=delta), t)])

    # ------------------------------------------------------------ agents
    @rule(
        name=accounts,
        what=st.sampled_from(
            ["approve", "revoke", "order", "market", "withdraw", "transfer", "leverage", "approve_other"]
        ),
        notional=notionals,
        offset=offsets,
        market=st.sampled_from(MARKETS),
        is_buy=st.booleans(),
        tif=tifs,
    )
    def agent(self, name: str, what: str, notional: int, offset: int, market: int, is_buy: bool, tif: int) -> None:
        """Approve or revoke an agent; an agent trades for its owner but may never move collateral
        or change settings (UNAUTHORIZED, nothing changes)."""
        agent = f"agent-{name}"
        agent_addr = self.addr(agent)
        t = self.next_time()
        if what in ("approve", "revoke"):
            self.produce([self.sign(name, A.ApproveAgent(agent=agent_addr, approve=what == "approve"), t)])
            return
        is_agent = self.agent_owner.get(agent_addr) == self.addr(name)
        if what == "order":
            tx = self._limit(agent, market, is_buy, offset, notional, tif, False, False, t)
        elif what == "market":
            tx = self.sign(
                agent,
                A.MarketOrder(
                    market=market,
                    is_buy=is_buy,
                    size=size_for(notional, self.mark(market)),
                    slippage_bps=300,
                    reduce_only=False,
                    cloid=0,
                ),
                t,
            )
        elif what == "withdraw":
            tx = self.sign(agent, A.Withdraw(amount=1, destination=agent_addr), t)
        elif what == "transfer":
            tx = self.sign(agent, A.Transfer(to=self.addr(OUTSIDER), amount=1), t)
        elif what == "leverage":
            tx = self.sign(agent, A.UpdateLeverage(market=market, leverage=2, is_cross=True), t)
        else:
            tx = self.sign(agent, A.ApproveAgent(agent=self.addr(f"sub-{agent}"), approve=True), t)
        forbidden = what in ("withdraw", "transfer", "leverage", "approve_other") and is_agent
        ex = self.produce([tx], expect_all_rejected=forbidden)
        if forbidden:
            assert self.codes(ex) == ["UNAUTHORIZED"]

    def _limit(
        self,
        name: str,
        market: int,
        is_buy: bool,
        offset: int,
        notional: int,
        tif: int,
        reduce_only: bool,
        cloid: bool,
        t: int,
    ) -> bytes:
        px = price_near(self.mark(market), offset)
        c = self.fresh_cloid() if cloid else 0
        if c:
            self.cloids.append((self.addr(name), market, c))
        return self.sign(
            name,
            A.PlaceOrder(
                market=market,
                is_buy=is_buy,
                price=px,
                size=size_for(notional, px),
                tif=tif,
                reduce_only=reduce_only,
                cloid=c,
            ),
            t,
        )

    # ------------------------------------------------------------ prices and time
    @rule(
        btc=st.one_of(st.integers(-5, 5), st.sampled_from([-50, 50, -20, 20, -10])),
        eth=st.one_of(st.integers(-5, 5), st.sampled_from([-50, 50, -10])),
        publishers=st.sampled_from([ORACLES, ORACLES, ORACLES[:1], ORACLES[1:]]),
        external=st.sampled_from(["same", "same", "none", "off"]),
    )
    def oracle_move(self, btc: int, eth: int, publishers: tuple[str, ...], external: str) -> None:
        """Oracle publishers move prices, including sudden +-50% crashes."""
        t = self.next_time()
        self.produce(self._oracle_txs({BTC: btc, ETH: eth}, t, publishers, external))

    @rule(hours=st.integers(1, 3), extra_ms=st.integers(0, 600_000), move=st.integers(-10, 10))
    def time_jump(self, hours: int, extra_ms: int, move: int) -> None:
        """Hours pass (funding settles) with one oracle update at the new time."""
        advance = hours * HOUR_MS + extra_ms
        t = self.next_time(advance)
        self.produce(self._oracle_txs({BTC: move, ETH: -move}, t, ORACLES), advance_ms=advance)

    @rule(depth=st.integers(1, 3), pull=st.booleans())
    def requote(self, depth: int, pull: bool) -> None:
        """Makers pull every quote (thin books make liquidations spill into the fund and ADL) or requote."""
        if pull:
            t = self.next_time()
            txs = [
                self.sign(self.names[o], A.Cancel(market=m, oid=oid), t)
                for oid, (o, m) in sorted(self.orders.items())
                if self.names.get(o) in MAKERS
            ]
            self.produce(txs)
        else:
            self._quote(depth)

    @rule(
        seller=accounts,
        buyer=st.sampled_from(TRADERS + MAKERS),
        market=st.sampled_from(MARKETS),
        factor_pct=st.sampled_from([10, 50, 150, 190, 195]),
        washes=st.integers(1, 4),
        thin=st.booleans(),
        external=st.booleans(),
    )
    def wash_trade(
        self, seller: str, buyer: str, market: int, factor_pct: int, washes: int, thin: bool, external: bool
    ) -> None:
        """Market integrity attack 1 (docs/security.md): two accounts trade one small lot with each other
        far from the mark (``factor_pct`` % of it), every 10 s, while every publisher posts the unchanged
        oracle (with or without an external price); ``thin`` first cancels every order in that market so
        the wash prints in an empty book. The mark must stay within the band (invariant below)."""
        if buyer == seller:
            buyer = MAKERS[0]
        for i in range(washes):
            t = self.next_time(10_000)
            txs = []
            if thin and i == 0:
                txs += [
                    self.sign(self.names[o], A.Cancel(market=m, oid=oid), t)
                    for oid, (o, m) in sorted(self.orders.items())
                    if m == market and o in self.names
                ]
            px = five_sig(self.mark(market) * factor_pct // 100)
            size = max(1, -(-10 * USDC // px))  # the smallest size meeting the 10 USDC minimum notional
            txs.append(
                self.sign(
                    seller,
                    A.PlaceOrder(
                        market=market, is_buy=False, price=px, size=size, tif=A.TIF_GTC, reduce_only=False, cloid=0
                    ),
                    t,
                )
            )
            txs.append(
                self.sign(
                    buyer,
                    A.PlaceOrder(
                        market=market, is_buy=True, price=px, size=size, tif=A.TIF_IOC, reduce_only=False, cloid=0
                    ),
                    t,
                )
            )
            txs += self._oracle_txs({BTC: 0, ETH: 0}, t, ORACLES, external="same" if external else "none")
            self.produce(txs, advance_ms=10_000)

    @rule(
        publishers=st.lists(st.sampled_from(ORACLES), min_size=0, max_size=3, unique=True),
        outlier=st.sampled_from(ORACLES + (None,)),
        factor_pct=st.sampled_from([10, 80, 125, 1_000]),
        move=st.integers(-3, 3),
        advance_ms=st.sampled_from([1_000, 10_000, 59_000, 61_000, 200_000]),
    )
    def publisher_subset(
        self, publishers: list[str], outlier: str | None, factor_pct: int, move: int, advance_ms: int
    ) -> None:
        """Market integrity attack 2: only some publishers post (a small honest move), and one publisher
        may post an outlier (``factor_pct`` % of the oracle, oracle and external alike), after up to
        200 s of silence. The per-block oracle checks in ``produce`` do the asserting."""
        t = self.next_time(advance_ms)
        honest = tuple(p for p in publishers if p != outlier)
        txs = self._oracle_txs({BTC: move, ETH: move}, t, honest)
        if outlier is not None:
            bad = [
                A.OraclePrice(
                    market=m,
                    oracle_price=max(1, self.oracle(m) * factor_pct // 100),
                    external_price=max(1, self.oracle(m) * factor_pct // 100),
                )
                for m in MARKETS
            ]
            txs.append(self.sign(outlier, A.OracleUpdate(prices=bad), t))
        self.produce(txs, advance_ms=advance_ms)

    @rule(
        wait_s=st.integers(30, 900),
        poster=st.sampled_from(ORACLES + (None,)),
        factor_pct=st.sampled_from([100, 10, 1_000]),
    )
    def stale_publishers(self, wait_s: int, poster: str | None, factor_pct: int) -> None:
        """Time passes without posts (publishers go stale, funding may not sample); then at most one
        publisher posts, possibly an outlier: a lone publisher never moves the oracle."""
        t = self.next_time(wait_s * 1000)
        txs = []
        if poster is not None:
            prices = [
                A.OraclePrice(market=m, oracle_price=max(1, self.oracle(m) * factor_pct // 100), external_price=0)
                for m in MARKETS
            ]
            txs.append(self.sign(poster, A.OracleUpdate(prices=prices), t))
        before = self._prices()
        self.produce(txs, advance_ms=wait_s * 1000)
        chain = self.view.get(CHAIN_KEY)
        if wait_s * 1000 >= chain.oracle_fresh_ms:
            assert self._prices() == before, "one publisher alone moved a stale oracle"

    # ------------------------------------------------------------ mixed blocks, replays, rejections
    @rule(data=st.data(), n=st.integers(2, 8))
    def mixed_block(self, data: Any, n: int) -> None:
        """Several transactions in one block (ALO first, cancels, then takers: protocol §6.4)."""
        t = self.next_time()
        names = [n_ for n_ in TRADERS if get_account(self.view, self.addr(n_)).cash > 0] or list(TRADERS)
        txs = []
        for _ in range(n):
            kind = data.draw(st.sampled_from(["limit", "limit", "market", "cancel", "withdraw", "leverage", "oracle"]))
            name = data.draw(st.sampled_from(names))
            m = data.draw(st.sampled_from(MARKETS))
            if kind == "limit":
                txs.append(
                    self._limit(
                        name,
                        m,
                        data.draw(st.booleans()),
                        data.draw(offsets),
                        data.draw(notionals),
                        data.draw(tifs),
                        data.draw(st.booleans()),
                        data.draw(st.booleans()),
                        t,
                    )
                )
            elif kind == "market":
                txs.append(
                    self.sign(
                        name,
                        A.MarketOrder(
                            market=m,
                            is_buy=data.draw(st.booleans()),
                            size=size_for(data.draw(notionals), self.mark(m)),
                            slippage_bps=500,
                            reduce_only=data.draw(st.booleans()),
                            cloid=0,
                        ),
                        t,
                    )
                )
            elif kind == "cancel" and self.orders:
                oid = data.draw(st.sampled_from(sorted(self.orders)))
                owner, om = self.orders[oid]
                txs.append(self.sign(self.names.get(owner, name), A.Cancel(market=om, oid=oid), t))
            elif kind == "withdraw":
                txs.append(self.sign(name, A.Withdraw(amount=data.draw(amounts), destination=self.addr(name)), t))
            elif kind == "leverage":
                txs.append(
                    self.sign(
                        name,
                        A.UpdateLeverage(
                            market=m, leverage=data.draw(st.integers(1, 30)), is_cross=data.draw(st.booleans())
                        ),
                        t,
                    )
                )
            else:
                txs.extend(
                    self._oracle_txs({m: data.draw(st.integers(-8, 8))}, t, (data.draw(st.sampled_from(ORACLES)),))
                )
        self.produce(txs)

    @rule(data=st.data())
    def rejected_only_block(self, data: Any) -> None:
        """A block of transactions that must all fail, each with its own typed code: replays of
        accepted transactions, forged authorities, unknown markets, bad nonces, overdrafts..."""
        t = self.next_time()
        chain = self.view.get(CHAIN_KEY)
        name = data.draw(st.sampled_from(TRADERS))
        candidates = {
            "forged_deposit": (self.sign(name, A.Deposit(to=self.addr(name), amount=10**12, ref=1), t), "UNAUTHORIZED"),
            "forged_oracle": (
                self.sign(name, A.OracleUpdate(prices=[A.OraclePrice(market=0, oracle_price=1, external_price=0)]), t),
                "UNAUTHORIZED",
            ),
            "unknown_market_oracle": (
                self.sign(
                    "oracle-1", A.OracleUpdate(prices=[A.OraclePrice(market=7, oracle_price=1, external_price=0)]), t
                ),
                "INVALID_ORACLE",
            ),
            "unknown_market_order": (
                self.sign(
                    name, A.PlaceOrder(market=2, is_buy=True, price=1000, size=1, tif=0, reduce_only=False, cloid=0), t
                ),
                "UNKNOWN_MARKET",
            ),
            "leverage_too_high": (
                self.sign(name, A.UpdateLeverage(market=ETH, leverage=26, is_cross=True), t),
                "INVALID_LEVERAGE",
            ),
            "cancel_unknown": (self.sign(name, A.Cancel(market=BTC, oid=chain.next_oid + 10**6), t), "ORDER_NOT_FOUND"),
            "old_nonce": (
                self.sign(name, A.Transfer(to=self.addr(OUTSIDER), amount=1), t, nonce=t - 3 * 24 * HOUR_MS),
                "BAD_NONCE",
            ),
            "future_nonce": (
                self.sign(name, A.Transfer(to=self.addr(OUTSIDER), amount=1), t, nonce=t + 2 * 24 * HOUR_MS),
                "BAD_NONCE",
            ),
            "overdraft": (
                self.sign(
                    OUTSIDER,
                    A.Withdraw(
                        amount=max(get_account(self.view, self.addr(OUTSIDER)).cash, 0) + 1,
                        destination=self.addr(OUTSIDER),
                    ),
                    t,
                ),
                "INSUFFICIENT_BALANCE",
            ),
            "zero_size": (
                self.sign(
                    name, A.PlaceOrder(market=0, is_buy=True, price=1000, size=0, tif=0, reduce_only=False, cloid=0), t
                ),
                "DECODE",
            ),
            "garbage": (b"\x93\x01\x02", "DECODE"),
        }
        # A key without an account is refused before anything else is looked at (except authority actions).
        if not self.exists(name):
            for k in ("unknown_market_order", "leverage_too_high", "cancel_unknown", "old_nonce", "future_nonce"):
                candidates[k] = (candidates[k][0], "NO_SUCH_ACCOUNT")
        if not self.exists(OUTSIDER):
            candidates["overdraft"] = (candidates["overdraft"][0], "NO_SUCH_ACCOUNT")
        if self.accepted:
            replay = data.draw(st.sampled_from(self.accepted))
            candidates["replay"] = (replay, self._replay_code(replay))
        keys = data.draw(st.lists(st.sampled_from(sorted(candidates)), min_size=1, max_size=5, unique=True))
        ex = self.produce([candidates[k][0] for k in keys], expect_all_rejected=True)
        assert self.codes(ex) == [candidates[k][1] for k in keys]

    def _check_bad_debt(self, executed: Any) -> None:
        """Protocol §12.12: the insurance fund ends a block below zero only as recorded bad debt: the
        block's step 50 haircut every payer to zero (``amount == value_before``) and reported the rest
        with ``AdlShortfall{market = CROSS, underwater = fund, unmatched = 0}``."""
        from clearinghouse.spec.constants import CROSS
        from clearinghouse.spec.waterfall.events import AdlShortfall, Haircut
        from clearinghouse.spec.waterfall.insurance_fund import fund_value

        cuts = [e for e in executed.events if isinstance(e, Haircut)]
        STATS["haircuts"] = STATS.get("haircuts", 0) + len(cuts)
        if fund_value(self.view) >= 0:
            return
        assert all(h.amount == h.value_before for h in cuts), "the fund kept bad debt while a payer kept value"
        assert any(
            isinstance(e, AdlShortfall) and e.underwater == INSURANCE_FUND and e.market == CROSS and e.unmatched == 0
            for e in executed.events
        ), "the fund ended the block below zero without recording it"
        STATS["bad_debt_blocks"] = STATS.get("bad_debt_blocks", 0) + 1

    def _replay_code(self, raw: bytes) -> str:
        """What a replayed accepted transaction gets (protocol §4.6, §6.5): the acting account's
        existence is checked before the nonce, so a replay by a key whose account has since been
        emptied and removed (e.g. liquidated to nothing) is ``NO_SUCH_ACCOUNT``; otherwise the
        nonce, still in the signer's kept set, is ``BAD_NONCE``."""
        from clearinghouse.spec.state.keys import account_key, agent_key
        from tx.encoding import decode_transaction
        from tx.signing import recover_signer, signing_digest

        tx = decode_transaction(raw)
        if isinstance(tx.action, (A.Deposit, A.OracleUpdate)):
            return "BAD_NONCE"
        signer = recover_signer(
            signing_digest(self.view.get(CHAIN_KEY).chain_id, tx.nonce, encode(tx.action)), tx.signature
        )
        agent = self.view.get(agent_key(signer))
        acting = agent.owner if agent is not None else signer
        return "BAD_NONCE" if self.view.get(account_key(acting)) is not None else "NO_SUCH_ACCOUNT"

    def codes(self, executed: Any) -> list[str]:
        return [
            r.code for r in sorted((e for e in executed.events if isinstance(e, Receipt)), key=lambda r: r.tx_index)
        ]

    # ------------------------------------------------------------ invariants and teardown
    @invariant()
    def rulebook_invariants(self) -> None:
        if self.p is None:
            return
        violations = check_all(self.p.engine.store)
        assert not violations, violations

    @invariant()
    def mark_within_band_of_oracle(self) -> None:
        """Protocol §11.3: oracle x (1 - band) <= mark <= oracle x (1 + band), lo rounded up, hi down."""
        if self.p is None:
            return
        view = self.view
        for m in MARKETS:
            state, band = view.get(market_state_key(m)), view.get(market_spec_key(m)).mark_band_bps
            lo = -((-state.oracle_price * (10_000 - band)) // 10_000)
            hi = state.oracle_price * (10_000 + band) // 10_000
            assert lo <= state.mark_price <= hi, (
                f"market {m}: mark {state.mark_price} outside [{lo}, {hi}] around oracle {state.oracle_price}"
            )

    def teardown(self) -> None:
        try:
            if self.p is None:
                return
            self.p.close()
            memory_root = self.p.engine.store.root
            # Fresh process, different hash seed; runs while this process replays into LMDB.
            seed = str(1 + (self.example_no * 7919) % 4_000_000_000)
            proc = subprocess.Popen(
                [sys.executable, "-m", "clearinghouse.tools.cli", "verify", self.log_path, "--json"],
                env=subprocess_env(PYTHONHASHSEED=seed),
                cwd=self.tmp,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                with LmdbStore(os.path.join(self.tmp, "db")) as store:
                    stats = replay_log(Engine(store), self.log_path)
                    assert stats["applied"] == len(self.p.blocks)
                    assert store.root == memory_root, "LMDB replay disagrees with the in-memory producer"
                    assert not check_all(store)
            finally:
                out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            report = json.loads(out)
            assert report["ok"] is True and bytes.fromhex(report["state_root"]) == memory_root, report
            STATS["subprocess_verifies"] += 1
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def examples_per_policy(total: int, soak: bool, policies: int = len(POLICY_NAMES)) -> int:
    """Examples each policy's machine runs: ``total`` under the soak, else ceil(total x 1.3 / policies)."""
    if soak:
        return total
    num, den = SPLIT_GROWTH
    return max(1, -(-total * num // (den * policies)))


def _machine_for(policy: str) -> type[ClearinghouseMachine]:
    cls = type(f"Machine_{policy.replace('-', '_')}", (ClearinghouseMachine,), {"POLICY": policy})
    cls.TestCase.settings = settings(
        max_examples=examples_per_policy(_profile_examples(), settings.get_current_profile_name() == "soak"),
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    return cls


MACHINES = {p: _machine_for(p) for p in POLICY_NAMES}
TestMachineBitmex = MACHINES["bitmex"].TestCase
TestMachineClawback = MACHINES["clawback"].TestCase
TestMachineHyperliquid = MACHINES["hyperliquid"].TestCase
TestMachineProRata = MACHINES["pro-rata"].TestCase
TestMachineRiskWaterFilling = MACHINES["risk-water-filling"].TestCase
TestMachineSeed = MACHINES["seed"].TestCase


def test_every_policy_has_a_machine() -> None:
    assert sorted(MACHINES) == sorted(POLICIES)
    assert {n for n in globals() if n.startswith("TestMachine")} == {
        "TestMachine" + "".join(w.capitalize() for w in p.split("-")) for p in POLICIES
    }
    assert examples_per_policy(300, False, 6) == 65 and examples_per_policy(2000, True, 6) == 2000


def test_report_example_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints what the state machine ran (runs after it: file order)."""
    with capsys.disabled():
        print(
            f"\n[state machine] profile={settings.get_current_profile_name()} examples={STATS['examples']} "
            + " ".join(f"{k}={v}" for k, v in STATS.items() if k != "examples")
            + f" index_audit={AUDIT}"
        )
        if os.environ.get("STATE_MACHINE_CODES"):
            print("  rules:", dict(sorted(RULES.items())))
            for (action, code), n in sorted(CODES.items()):
                print(f"  {action:22s} {code:22s} {n}")
    assert REPO_ROOT.is_dir()
