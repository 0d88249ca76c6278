"""Collateral actions: deposit (bridge only), withdraw, transfer (protocol §9.1-§9.3)."""

from __future__ import annotations

import msgspec

from clearinghouse.spec.errors import InsufficientBalance, InvalidAmount, ReservedAccount, Unauthorized
from clearinghouse.spec.events import Deposited, Transferred, Withdrew
from clearinghouse.spec.state.access import get_agent, get_chain
from clearinghouse.spec.state.accounts import add_cash
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import CHAIN_KEY, SYSTEM_ACCOUNTS
from clearinghouse.spec.trading.margin import withdrawable
from tx.actions import Deposit, Transfer, Withdraw
from tx.types import U64_MAX


def apply_deposit(ctx: TxContext, action: Deposit) -> None:
    """Credit a deposit bridged in from L1. Only the genesis bridge key may sign one (protocol §9.3).

    Raises:
        Unauthorized: the signer is not the genesis bridge.
        ReservedAccount: the recipient is a system account or an approved agent key.
        InvalidAmount: total deposits (or the balance) would leave 64 bits.
    """
    if ctx.signer != ctx.chain.bridge:
        raise Unauthorized("only the bridge may sign deposits")
    if action.to in SYSTEM_ACCOUNTS:
        raise ReservedAccount("deposits to system accounts are not allowed")
    _check_not_agent(ctx, action.to)
    chain = get_chain(ctx.ws)
    if chain.deposits + action.amount > U64_MAX:
        raise InvalidAmount("total deposits would overflow their 64-bit counter")
    add_cash(ctx.ws, action.to, action.amount)
    ctx.ws.put(CHAIN_KEY, msgspec.structs.replace(chain, deposits=chain.deposits + action.amount))
    ctx.emit(Deposited(tx_index=ctx.tx_index, account=action.to, amount=action.amount, ref=action.ref))


def apply_withdraw(ctx: TxContext, action: Withdraw) -> None:
    """Release collateral off-chain, if the account stays above its withdrawal floor (protocol §9.3).

    Raises:
        ReservedAccount: a system account cannot withdraw.
        InsufficientBalance: the account would fall below its withdrawal floor.
        InvalidAmount: total withdrawals would leave 64 bits.
    """
    _check_can_release(ctx, action.amount)
    chain = get_chain(ctx.ws)
    if chain.withdrawals + action.amount > U64_MAX:
        raise InvalidAmount("total withdrawals would overflow their 64-bit counter")
    add_cash(ctx.ws, ctx.account, -action.amount)
    ctx.ws.put(CHAIN_KEY, msgspec.structs.replace(chain, withdrawals=chain.withdrawals + action.amount))
    ctx.emit(Withdrew(tx_index=ctx.tx_index, account=ctx.account, amount=action.amount, destination=action.destination))


def apply_transfer(ctx: TxContext, action: Transfer) -> None:
    """Move cross collateral to another account under the same floor as a withdrawal (protocol §9.3).

    Raises:
        ReservedAccount: the sender or the recipient is a system account, or the recipient an agent key.
        Unauthorized: a transfer to the account itself.
        InsufficientBalance: the sender would fall below its withdrawal floor.
        InvalidAmount: a balance would leave 64 bits.
    """
    if action.to in SYSTEM_ACCOUNTS:
        raise ReservedAccount("transfers to system accounts are not allowed")
    if action.to == ctx.account:
        raise Unauthorized("transfer to self")
    _check_not_agent(ctx, action.to)
    _check_can_release(ctx, action.amount)
    add_cash(ctx.ws, ctx.account, -action.amount)
    add_cash(ctx.ws, action.to, action.amount)
    ctx.emit(Transferred(tx_index=ctx.tx_index, source=ctx.account, destination=action.to, amount=action.amount))


def _check_not_agent(ctx: TxContext, to: bytes) -> None:
    """An agent key acts only for its owner: money sent to it could never be used or withdrawn."""
    if get_agent(ctx.ws, to) is not None:
        raise ReservedAccount("that address is an approved agent key, not an account")


def _check_can_release(ctx: TxContext, amount: int) -> None:
    if ctx.account in SYSTEM_ACCOUNTS:
        raise ReservedAccount("system accounts cannot withdraw or transfer")
    free = withdrawable(ctx.ws, ctx.account)
    if amount > free:
        raise InsufficientBalance(f"amount {amount} exceeds withdrawable {free}")
