"""The state transition: genesis, and one block of signed transactions.

``apply_block`` is the whole consensus rule for a block. It reads and writes
only through a ``WorkingState`` and returns the events; the caller takes
``ws.changes()`` to storage, which commits them atomically and yields the
state root. Order of work (protocol §6.3):

1. check the block's height and time against the chain record;
2. decode every transaction (failures become rejected receipts);
3. run transactions in ``ordering.execution_order``; each one is atomic:
   signature, nonce, authorisation, then its action; on ``InvalidTransaction``
   its writes and events are undone and only its receipt remains;
4. end-of-block work in the fixed order of ``end_of_block.run``;
5. record the new height and time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import msgspec

from clearinghouse.spec import end_of_block
from clearinghouse.spec.actions.agents import apply_approve_agent
from clearinghouse.spec.actions.collateral import apply_deposit, apply_transfer, apply_withdraw
from clearinghouse.spec.actions.leverage import apply_update_isolated_margin, apply_update_leverage
from clearinghouse.spec.actions.nonces import use_nonce
from clearinghouse.spec.errors import (
    DecodeRejected,
    HighSRejected,
    InvalidBlock,
    InvalidGenesis,
    InvalidTransaction,
    NonCanonicalRejected,
    NoSuchAccount,
    SignatureRejected,
    Unauthorized,
)
from clearinghouse.spec.events import BaseEvent, Receipt
from clearinghouse.spec.ordering import execution_order
from clearinghouse.spec.prices.oracle import apply_oracle_update
from clearinghouse.spec.state.access import get_agent, get_chain
from clearinghouse.spec.state.accounts import EMPTY_ACCOUNT, put_account
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import CHAIN_KEY, FEE_POOL, INSURANCE_FUND, account_key
from clearinghouse.spec.state.records import Account, Chain
from clearinghouse.spec.state.working_state import WorkingState, atomically
from clearinghouse.spec.trading.orders import (
    apply_cancel,
    apply_cancel_by_cloid,
    apply_market_order,
    apply_modify,
    apply_place_order,
    apply_trigger_order,
)
from clearinghouse.spec.waterfall.policies import POLICIES
from tx import actions as A
from tx.encoding import decode_transaction, encode, genesis_hash, tx_id
from tx.errors import HighSSignature, NonCanonicalEncoding, SignatureError, TxError
from tx.messages import Genesis, Transaction
from tx.signing import recover_signer, signing_digest

Handler = Callable[[TxContext, Any], None]

AUTHORITY_ACTIONS = (A.Deposit, A.OracleUpdate)
"""Actions signed by genesis authorities, which need no account of their own."""

HANDLERS: dict[type, Handler] = {
    A.Deposit: apply_deposit,
    A.Withdraw: apply_withdraw,
    A.Transfer: apply_transfer,
    A.PlaceOrder: apply_place_order,
    A.MarketOrder: apply_market_order,
    A.TriggerOrder: apply_trigger_order,
    A.Cancel: apply_cancel,
    A.CancelByCloid: apply_cancel_by_cloid,
    A.Modify: apply_modify,
    A.UpdateLeverage: apply_update_leverage,
    A.UpdateIsolatedMargin: apply_update_isolated_margin,
    A.ApproveAgent: apply_approve_agent,
    A.OracleUpdate: apply_oracle_update,
}
"""Action type -> handler (protocol §9): the one dispatch table, every action in one place."""

SUPPORTED_POLICIES = tuple(sorted(POLICIES))


def apply_genesis(ws: WorkingState, genesis: Genesis) -> None:
    """Write the genesis state (height 0): chain record, markets, system accounts (protocol §6.3).

    Raises:
        InvalidGenesis: publishers not sorted and distinct, an unknown policy, or a bad market list
            (``validate_genesis_markets``).
    """
    from clearinghouse.spec.trading.markets import init_markets, validate_genesis_markets

    pubs = list(genesis.oracle_publishers)
    if pubs != sorted(set(pubs)):
        raise InvalidGenesis("genesis oracle publishers must be sorted and distinct")
    if genesis.policy not in SUPPORTED_POLICIES:
        raise InvalidGenesis(f"unknown policy {genesis.policy!r}; expected one of {SUPPORTED_POLICIES}")
    validate_genesis_markets(genesis)  # every check before the first write (protocol §5)
    ws.put(
        CHAIN_KEY,
        Chain(
            chain_id=genesis.chain_id,
            genesis_hash=genesis_hash(genesis),
            bridge=genesis.bridge,
            oracle_publishers=pubs,
            policy=genesis.policy,
            market_count=len(genesis.markets),
            height=0,
            time_ms=genesis.time_ms,
            next_oid=1,
            deposits=genesis.insurance_fund,
            withdrawals=0,
            oracle_fresh_ms=genesis.oracle_fresh_ms,
        ),
    )
    # The initial insurance fund counts as a deposit so conservation holds from height 0.
    put_account(ws, INSURANCE_FUND, Account(cash=genesis.insurance_fund, open_markets=[], open_orders=0))
    put_account(ws, FEE_POOL, EMPTY_ACCOUNT)
    init_markets(ws, genesis)


# Receipt messages are committed through the events root, so the messages of wire-level
# rejections are fixed sentences: the decoder's and libsecp256k1's own wording (which names
# byte offsets and changes between library versions) must never reach consensus data.
MSG_DECODE = "transaction bytes are malformed or out of range"
MSG_NON_CANONICAL = "transaction bytes are not the canonical encoding"
MSG_BAD_SIGNATURE = "signature is malformed or does not recover a key"
MSG_HIGH_S = "signature is not in low-s form"


class Decoded(NamedTuple):
    """One transaction of a block, decoded: exactly one of ``tx`` and ``error`` is set (protocol §6.3)."""

    tx: Transaction | None
    error: InvalidTransaction | None


def decode_for_block(raw: bytes) -> Decoded:
    """Decode one transaction, mapping wire errors to rejection codes (protocol §6.3)."""
    try:
        return Decoded(decode_transaction(raw), None)
    except NonCanonicalEncoding:
        return Decoded(None, NonCanonicalRejected(MSG_NON_CANONICAL))
    except TxError:
        return Decoded(None, DecodeRejected(MSG_DECODE))


def recover(chain: Chain, tx: Transaction) -> bytes:
    """The signer's address, or ``InvalidTransaction`` for a bad signature (protocol §6.3).

    Under the lab's ``end_of_block.ToolHook`` with a ``signers`` memo (tools only), a signature
    recovered before for the same digest is looked up instead of recovered again (same result).

    Raises:
        HighSRejected: ``s`` above ``n/2`` (code ``HIGH_S``, protocol §4.2).
        SignatureRejected: any other malformed signature or failed recovery (``BAD_SIGNATURE``).
    """
    hook = end_of_block.current_tool_hook()
    memo = hook.signers if hook is not None else None
    if memo is None:
        return recover_for_chain(chain.chain_id, tx)
    key = signing_digest(chain.chain_id, tx.nonce, encode(tx.action)) + tx.signature
    known = memo.get(key)
    if known is None:
        known = recover_for_chain(chain.chain_id, tx)
        memo[key] = known
    return known


def recover_for_chain(chain_id: int, tx: Transaction) -> bytes:
    """``recover`` given the chain id alone (what a recovery stage ahead of execution knows;
    protocol §6.3, §8.5).

    Raises:
        HighSRejected: ``s`` above ``n/2`` (code ``HIGH_S``, protocol §4.2).
        SignatureRejected: any other malformed signature or failed recovery (``BAD_SIGNATURE``).
    """
    digest = signing_digest(chain_id, tx.nonce, encode(tx.action))
    try:
        return recover_signer(digest, tx.signature)
    except HighSSignature:
        raise HighSRejected(MSG_HIGH_S) from None
    except SignatureError:
        raise SignatureRejected(MSG_BAD_SIGNATURE) from None


class Recovered(NamedTuple):
    """The outcome of ``recover`` for one transaction, computed ahead of execution (protocol §8.5):
    the signer's address with ``code`` empty, or ``signer`` empty and the rejection code
    (``HIGH_S`` or ``BAD_SIGNATURE``) that ``recover`` would raise."""

    signer: bytes
    code: str


class RecoveredBlock(NamedTuple):
    """Signatures of one block recovered ahead of execution for chain ``chain_id``: one entry per raw
    transaction, ``None`` where the transaction does not decode or recovery must run in the
    transition itself. ``apply_block`` uses it only if ``chain_id`` and the length match (protocol §8.5)."""

    chain_id: int
    results: Sequence[Recovered | None]


def recover_ahead(chain_id: int, raw_txs: Sequence[bytes]) -> list[Recovered | None]:
    """``recover`` for every transaction of a block, without state (protocol §8.5): pure, so a
    verifier may run it in other processes while earlier blocks execute; the transition then
    raises exactly the error ``recover`` would have raised, at the same transaction."""
    out: list[Recovered | None] = []
    for raw in raw_txs:
        tx, error = decode_for_block(raw)
        if tx is None or error is not None:
            out.append(None)
            continue
        try:
            out.append(Recovered(recover_for_chain(chain_id, tx), ""))
        except HighSRejected:
            out.append(Recovered(b"", HighSRejected.code))
        except SignatureRejected:
            out.append(Recovered(b"", SignatureRejected.code))
        except Exception:  # noqa: BLE001 - anything else: the transition recovers (and raises) itself
            out.append(None)
    return out


def signer_of(chain: Chain, tx: Transaction, recovered: Recovered | None) -> bytes:
    """The signer's address: from ``recovered`` when given, else ``recover`` (same value, same errors).

    Raises:
        HighSRejected: ``s`` above ``n/2`` (code ``HIGH_S``, protocol §4.2).
        SignatureRejected: any other malformed signature or failed recovery (``BAD_SIGNATURE``).
    """
    if recovered is None:
        return recover(chain, tx)
    if recovered.code == HighSRejected.code:
        raise HighSRejected(MSG_HIGH_S)
    if recovered.code:
        raise SignatureRejected(MSG_BAD_SIGNATURE)
    return recovered.signer


def acting_account(ws: WorkingState, signer: bytes, action: A.Action) -> bytes:
    """Whose account the action changes: the owner, when an approved agent signs (protocol §6.3).

    Raises:
        Unauthorized: an agent key signs an action agents may not sign.
    """
    agent = get_agent(ws, signer)
    if agent is None:
        return signer
    if not isinstance(action, A.AGENT_ALLOWED):
        raise Unauthorized(f"an agent key may not sign {type(action).__name__}")
    return agent.owner


def apply_transaction(ctx: TxContext, tx: Transaction, recovered: Recovered | None = None) -> None:
    """Validate and apply one decoded transaction, filling in ``ctx`` as it learns who acts (protocol §6.3).

    Order: signature (``recovered`` if it was computed ahead, else ``recover``), handler lookup,
    acting account (agents), nonce, action.

    Raises:
        InvalidTransaction: any rejection (the subclass names its code); the caller turns it into the
            receipt and rolls the transaction back.
        NoSuchAccount: the acting account does not exist (only deposits and oracle updates may create it).
    """
    ctx.signer = signer_of(ctx.chain, tx, recovered)
    handler = HANDLERS.get(type(tx.action))
    if handler is None:
        raise InvalidTransaction(f"{type(tx.action).__name__} is not supported")
    ctx.account = acting_account(ctx.ws, ctx.signer, tx.action)
    if not isinstance(tx.action, AUTHORITY_ACTIONS) and ctx.ws.get(account_key(ctx.account)) is None:
        # Only accounts that exist (hold or held collateral) may write state: an unfunded key
        # cannot fill the state with nonce sets, order ids, settings or agent records for free.
        raise NoSuchAccount("the acting account does not exist: deposit first")
    use_nonce(ctx.ws, ctx.signer, tx.nonce, ctx.time_ms)
    handler(ctx, tx.action)


def apply_block(
    ws: WorkingState, height: int, time_ms: int, raw_txs: list[bytes], recovered: RecoveredBlock | None = None
) -> list[BaseEvent]:
    """Apply one block to ``ws`` and return its events (receipts first, then end-of-block; protocol §6.3).

    ``recovered``: the block's signatures recovered ahead (``recover_ahead``), used only when it
    is for this chain and has one entry per transaction; the events and state are the same
    with or without it.

    Raises:
        InvalidBlock: the height does not follow the chain's, or the time goes backwards.
    """
    chain: Chain = get_chain(ws)
    if height != chain.height + 1:
        raise InvalidBlock(f"block height {height} does not follow {chain.height}")
    if time_ms < chain.time_ms:
        raise InvalidBlock(f"block time {time_ms} is before the previous block's {chain.time_ms}")
    ws.put(CHAIN_KEY, msgspec.structs.replace(chain, height=height, time_ms=time_ms))

    decoded = [decode_for_block(raw) for raw in raw_txs]
    ahead: Sequence[Recovered | None] = [None] * len(raw_txs)
    if recovered is not None and recovered.chain_id == chain.chain_id and len(recovered.results) == len(raw_txs):
        ahead = recovered.results
    actions = [d[0].action if d[0] is not None else None for d in decoded]
    events: list[BaseEvent] = []
    for index in execution_order(actions):
        tx, error = decoded[index]
        tid = tx_id(raw_txs[index])
        action_name = type(tx.action).__name__ if tx is not None else "?"
        ctx = TxContext(ws=ws, chain=get_chain(ws), tx_index=index, signer=b"", account=b"", time_ms=time_ms)
        if tx is not None and error is None:
            error = atomically(ws, ctx.events, lambda: apply_transaction(ctx, tx, ahead[index]))
        if error is None:
            events.append(
                Receipt(
                    tx_index=index,
                    tx_id=tid,
                    signer=ctx.signer,
                    account=ctx.account,
                    action=action_name,
                    ok=True,
                    code="OK",
                    message="",
                )
            )
            events.extend(ctx.events)
        else:
            # The receipt names whoever was identified before the rejection (signer, account).
            events.append(
                Receipt(
                    tx_index=index,
                    tx_id=tid,
                    signer=ctx.signer,
                    account=ctx.account,
                    action=action_name,
                    ok=False,
                    code=error.code,
                    message=error.message,
                )
            )
    events.extend(end_of_block.run(ws, time_ms))
    return events
