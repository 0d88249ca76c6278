"""Collateral actions through blocks: deposit (bridge only), withdraw, transfer (protocol §9.1-§9.3, §1.1).

Who may move what: only the bridge deposits; the signer is always the source
of a withdrawal or transfer (there is no "from" field), so nobody can move
another account's funds; an agent key may never withdraw or transfer;
system accounts cannot receive transfers or deposits. A rejected transaction
changes nothing (checked against an empty block at the same height and time).
"""

from __future__ import annotations

from typing import Any

from conftest import assert_rejected_without_effect, cash_of, codes_of, receipts_of
from hypothesis import given
from hypothesis import strategies as st

from clearinghouse.chain.producer import Producer
from clearinghouse.spec.state.keys import CHAIN_KEY, FEE_POOL, INSURANCE_FUND, NS_ACCOUNT, account_key
from clearinghouse.tools.demo import USDC, demo_genesis
from tx.actions import ApproveAgent, Deposit, PlaceOrder, Transfer, Withdraw
from tx.types import I64_MAX, U64_MAX


def t_next(p: Any) -> int:
    return p.time_ms + 1000


def total_cash(p: Any) -> int:
    """Sum of cash over every account in committed state (system accounts included)."""
    view = p.engine.view()
    return sum(view.get(key).cash for key, _ in p.engine.store.scan_prefix(NS_ACCOUNT))


def assert_conserved(p: Any) -> None:
    """Conservation (protocol §1.1) without positions: deposits - withdrawals = all cash (insurance fund and fee pool included)."""
    chain = p.engine.view().get(CHAIN_KEY)
    assert chain.deposits - chain.withdrawals == total_cash(p)


# ---------------------------------------------------------------- withdraw
def test_withdraw_beyond_balance_changes_nothing(funded: Any) -> None:
    alice = funded.wallet("alice")
    for amount in (1_000 * USDC + 1, 5_000 * USDC, I64_MAX):
        assert_rejected_without_effect(
            funded,
            [alice.sign(Withdraw(amount=amount, destination=alice.address), t_next(funded))],
            ["INSUFFICIENT_BALANCE"],
        )
    assert cash_of(funded, "alice") == 1_000 * USDC
    assert_conserved(funded)


def test_withdraw_from_an_empty_account_changes_nothing(funded: Any) -> None:
    dave = funded.wallet("dave")
    # Dave was never funded: he has no account at all.
    assert_rejected_without_effect(
        funded, [dave.sign(Withdraw(amount=1, destination=dave.address), t_next(funded))], ["NO_SUCH_ACCOUNT"]
    )


def test_withdraw_whole_balance_removes_the_account(funded: Any) -> None:
    alice = funded.wallet("alice")
    executed = funded.block(
        [alice.sign(Withdraw(amount=1_000 * USDC, destination=funded.wallet("dave").address), t_next(funded))]
    )
    assert codes_of(executed) == ["OK"]
    assert funded.engine.store.get(account_key(alice.address)) is None  # an empty account leaves no trace in state
    chain = funded.engine.view().get(CHAIN_KEY)
    assert chain.withdrawals == 1_000 * USDC
    assert cash_of(funded, "dave") == 0  # the destination is off-chain, not an account here
    assert_conserved(funded)


def test_withdrawals_in_one_block_see_each_other(funded: Any) -> None:
    alice = funded.wallet("alice")
    txs = [alice.sign(Withdraw(amount=600 * USDC, destination=alice.address), t_next(funded)) for _ in range(2)]
    assert codes_of(funded.block(txs)) == ["OK", "INSUFFICIENT_BALANCE"]
    assert cash_of(funded, "alice") == 400 * USDC


# ---------------------------------------------------------------- transfer
def test_transfer_moves_cash_from_the_signer(funded: Any) -> None:
    alice, bob = funded.wallet("alice"), funded.wallet("bob")
    assert codes_of(funded.block([alice.sign(Transfer(to=bob.address, amount=250 * USDC), t_next(funded))])) == ["OK"]
    assert (cash_of(funded, "alice"), cash_of(funded, "bob")) == (750 * USDC, 1_250 * USDC)
    assert_conserved(funded)


def test_nobody_can_move_another_accounts_funds(funded: Any) -> None:
    """A transfer has no source field: whoever signs pays. Dave (empty) cannot spend alice's cash."""
    alice, dave = funded.wallet("alice"), funded.wallet("dave")
    # Dave asks for alice's money to come to him: he is the source, and he has nothing.
    assert_rejected_without_effect(
        funded, [dave.sign(Transfer(to=dave.address, amount=USDC), t_next(funded))], ["NO_SUCH_ACCOUNT"]
    )
    assert_rejected_without_effect(
        funded, [dave.sign(Transfer(to=alice.address, amount=USDC), t_next(funded))], ["NO_SUCH_ACCOUNT"]
    )
    # Bob (funded) sending to dave pays from bob's account; alice is untouched.
    bob = funded.wallet("bob")
    assert codes_of(funded.block([bob.sign(Transfer(to=dave.address, amount=USDC), t_next(funded))])) == ["OK"]
    assert (cash_of(funded, "alice"), cash_of(funded, "bob"), cash_of(funded, "dave")) == (
        1_000 * USDC,
        999 * USDC,
        USDC,
    )


def test_transfer_beyond_balance_changes_nothing(funded: Any) -> None:
    alice, bob = funded.wallet("alice"), funded.wallet("bob")
    assert_rejected_without_effect(
        funded,
        [alice.sign(Transfer(to=bob.address, amount=1_000 * USDC + 1), t_next(funded))],
        ["INSUFFICIENT_BALANCE"],
    )


def test_transfer_to_self_is_rejected(funded: Any) -> None:
    alice = funded.wallet("alice")
    assert_rejected_without_effect(
        funded, [alice.sign(Transfer(to=alice.address, amount=USDC), t_next(funded))], ["UNAUTHORIZED"]
    )


def test_transfers_to_system_accounts_are_reserved(funded: Any) -> None:
    alice = funded.wallet("alice")
    txs = [alice.sign(Transfer(to=acct, amount=USDC), t_next(funded)) for acct in (INSURANCE_FUND, FEE_POOL)]
    assert_rejected_without_effect(funded, txs, ["RESERVED_ACCOUNT", "RESERVED_ACCOUNT"])


def test_transfer_overflowing_the_recipient_is_rejected_whole(producer: Any) -> None:
    """The source is debited before the recipient overflows: the journal must restore it."""
    p = producer(fund={"alice": I64_MAX, "bob": 5 * USDC})
    bob = p.wallet("bob")
    assert_rejected_without_effect(
        p, [bob.sign(Transfer(to=p.wallet("alice").address, amount=USDC), t_next(p))], ["INVALID_AMOUNT"]
    )
    assert (cash_of(p, "alice"), cash_of(p, "bob")) == (I64_MAX, 5 * USDC)


# ---------------------------------------------------------------- deposit
def test_only_the_bridge_may_deposit(funded: Any) -> None:
    alice = funded.wallet("alice")
    forged = [
        funded.wallet(name).sign(Deposit(to=alice.address, amount=USDC, ref=1), t_next(funded))
        for name in ("alice", "bob", "oracle-1", "nobody")
    ]
    assert_rejected_without_effect(funded, forged, ["UNAUTHORIZED"] * len(forged))
    assert cash_of(funded, "alice") == 1_000 * USDC


def test_deposits_to_system_accounts_are_reserved(funded: Any) -> None:
    bridge = funded.wallet("bridge")
    txs = [bridge.sign(Deposit(to=acct, amount=USDC, ref=1), t_next(funded)) for acct in (INSURANCE_FUND, FEE_POOL)]
    assert_rejected_without_effect(funded, txs, ["RESERVED_ACCOUNT", "RESERVED_ACCOUNT"])


def test_deposit_overflowing_an_account_or_the_deposit_total_is_rejected(producer: Any) -> None:
    """Balances and the chain's deposit total are 64-bit (protocol §2.3): beyond, the deposit is refused, not a crash."""
    p = producer(fund={"alice": I64_MAX})
    bridge, alice, bob = p.wallet("bridge"), p.wallet("alice"), p.wallet("bob")
    assert_rejected_without_effect(
        p, [bridge.sign(Deposit(to=alice.address, amount=1, ref=2), t_next(p))], ["INVALID_AMOUNT"]
    )
    # Bob's balance would fit, but the running total of deposits (u64) would not.
    chain = p.engine.view().get(CHAIN_KEY)
    too_much = U64_MAX - chain.deposits + 1
    assert too_much <= I64_MAX
    assert_rejected_without_effect(
        p, [bridge.sign(Deposit(to=bob.address, amount=too_much, ref=3), t_next(p))], ["INVALID_AMOUNT"]
    )
    ok = bridge.sign(Deposit(to=bob.address, amount=too_much - 1, ref=4), t_next(p))
    assert codes_of(p.block([ok])) == ["OK"]
    assert p.engine.view().get(CHAIN_KEY).deposits == U64_MAX
    assert_conserved(p)


# ---------------------------------------------------------------- agents
def test_agent_can_neither_withdraw_nor_transfer(funded: Any) -> None:
    alice, agent = funded.wallet("alice"), funded.wallet("alice-agent")
    assert codes_of(funded.block([alice.sign(ApproveAgent(agent=agent.address, approve=True), t_next(funded))])) == [
        "OK"
    ]
    t = t_next(funded)
    forbidden = [
        agent.sign(Withdraw(amount=USDC, destination=agent.address), t),
        agent.sign(Transfer(to=agent.address, amount=USDC), t),
        agent.sign(Transfer(to=funded.wallet("bob").address, amount=USDC), t),
        agent.sign(Deposit(to=alice.address, amount=USDC, ref=1), t),
        agent.sign(ApproveAgent(agent=funded.wallet("other-agent").address, approve=True), t),
    ]
    assert_rejected_without_effect(funded, forbidden, ["UNAUTHORIZED"] * len(forbidden))
    assert cash_of(funded, "alice") == 1_000 * USDC
    # The agent acts for alice when it trades: the receipt names alice's account.
    order = agent.sign(
        PlaceOrder(market=0, is_buy=True, price=80_000_000, size=1, tif=0, reduce_only=False, cloid=0), t_next(funded)
    )
    (receipt,) = receipts_of(funded.block([order]))
    assert (receipt.code, receipt.signer, receipt.account) == ("OK", agent.address, alice.address)


def test_revoked_agent_is_just_a_stranger(funded: Any) -> None:
    alice, agent = funded.wallet("alice"), funded.wallet("alice-agent")
    funded.block([alice.sign(ApproveAgent(agent=agent.address, approve=True), t_next(funded))])
    assert codes_of(funded.block([alice.sign(ApproveAgent(agent=agent.address, approve=False), t_next(funded))])) == [
        "OK"
    ]
    # Now the key signs for itself: it has no account.
    assert_rejected_without_effect(
        funded, [agent.sign(Transfer(to=alice.address, amount=USDC), t_next(funded))], ["NO_SUCH_ACCOUNT"]
    )


# ---------------------------------------------------------------- a random walk against a model
NAMES = ("alice", "bob", "carol", "dave")

op_strategy = st.one_of(
    st.tuples(
        st.just("deposit"),
        st.sampled_from(NAMES + ("bridge",)),
        st.sampled_from(NAMES + ("insurance",)),
        st.integers(1, 2_000 * USDC),
    ),
    st.tuples(st.just("withdraw"), st.sampled_from(NAMES), st.just(""), st.integers(1, 2_000 * USDC)),
    st.tuples(
        st.just("transfer"),
        st.sampled_from(NAMES),
        st.sampled_from(NAMES + ("fee_pool",)),
        st.integers(1, 2_000 * USDC),
    ),
)


@given(blocks=st.lists(st.lists(op_strategy, max_size=6), min_size=1, max_size=5))
def test_collateral_random_walk_matches_a_model_and_conserves(blocks: list[list[tuple[str, str, str, int]]]) -> None:
    p = Producer(demo_genesis())
    wallets = {n: p.wallet(n) for n in NAMES + ("bridge",)}
    addr = {**{n: w.address for n, w in wallets.items()}, "insurance": INSURANCE_FUND, "fee_pool": FEE_POOL}
    model = {n: 0 for n in NAMES}
    for ops in blocks:
        t = t_next(p)
        txs, expected = [], []
        for kind, who, to, amount in ops:
            if kind == "deposit":
                txs.append(wallets[who].sign(Deposit(to=addr[to], amount=amount, ref=0), t))
                code = "UNAUTHORIZED" if who != "bridge" else "RESERVED_ACCOUNT" if to == "insurance" else "OK"
                if code == "OK":
                    model[to] += amount
            elif kind == "withdraw":
                txs.append(wallets[who].sign(Withdraw(amount=amount, destination=addr[who]), t))
                # An account exists while it holds cash (an emptied one is removed).
                code = (
                    "NO_SUCH_ACCOUNT" if model[who] == 0 else "OK" if amount <= model[who] else "INSUFFICIENT_BALANCE"
                )
                if code == "OK":
                    model[who] -= amount
            else:
                txs.append(wallets[who].sign(Transfer(to=addr[to], amount=amount), t))
                code = (
                    "NO_SUCH_ACCOUNT"
                    if model[who] == 0
                    else "RESERVED_ACCOUNT"
                    if to == "fee_pool"
                    else "UNAUTHORIZED"
                    if to == who
                    else "OK"
                    if amount <= model[who]
                    else "INSUFFICIENT_BALANCE"
                )
                if code == "OK":
                    model[who] -= amount
                    model[to] += amount
            expected.append(code)
        executed = p.block(txs)
        assert codes_of(executed) == expected
        assert {n: cash_of(p, n) for n in NAMES} == model
        assert_conserved(p)
