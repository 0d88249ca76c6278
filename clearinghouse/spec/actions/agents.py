"""Agent keys: an account lets another key trade (place, cancel, modify) for it.

An address that is an approved agent acts only for its owner; it can never
withdraw or transfer (protocol §4.5, §9.7).

An agent must be a fresh key: never a genesis authority (the bridge, an oracle
publisher), never a key with an account, never a key that has signed a
transaction (it has a nonce record). Otherwise anyone could approve the
bridge's or a publisher's key as their agent, after which every deposit or
price update it signs is refused as an agent's action (halting deposits and
prices), or approve a user's key whose account has been emptied, after which
that user's orders would trade for the approver.
"""

from __future__ import annotations

from clearinghouse.spec.errors import Unauthorized
from clearinghouse.spec.events import AgentSet
from clearinghouse.spec.state.access import get_agent, get_nonces
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import SYSTEM_ACCOUNTS, account_key, agent_key
from clearinghouse.spec.state.records import Agent
from tx.actions import ApproveAgent


def apply_approve_agent(ctx: TxContext, action: ApproveAgent) -> None:
    """Approve (or revoke) an agent key that may sign trading actions for the signer's account (protocol §9.7).

    Raises:
        Unauthorized: an agent signs it, the agent is the account itself or a system account, or the
            agent key is already an account (or has signed before) and so cannot become an agent.
    """
    if ctx.signer != ctx.account:
        raise Unauthorized("an agent cannot approve agents")
    if action.agent == ctx.account or action.agent in SYSTEM_ACCOUNTS:
        raise Unauthorized("an account cannot be its own agent")
    key = agent_key(action.agent)
    current = get_agent(ctx.ws, action.agent)
    if action.approve:
        if current is not None and current.owner != ctx.account:
            raise Unauthorized("that key is already another account's agent")
        if action.agent == ctx.chain.bridge or action.agent in ctx.chain.oracle_publishers:
            raise Unauthorized("a genesis authority's key cannot be an agent")
        if ctx.ws.get(account_key(action.agent)) is not None:
            raise Unauthorized("that key already has an account; agents must be fresh keys")
        if current is None and get_nonces(ctx.ws, action.agent) is not None:
            raise Unauthorized("that key has signed transactions; agents must be fresh keys")
        ctx.ws.put(key, Agent(owner=ctx.account))
    else:
        if current is None or current.owner != ctx.account:
            raise Unauthorized("that key is not this account's agent")
        ctx.ws.delete(key)
    ctx.emit(AgentSet(tx_index=ctx.tx_index, owner=ctx.account, agent=action.agent, approved=action.approve))
