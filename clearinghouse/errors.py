"""The clearinghouse's expected failures: one hierarchy, each with a stable code.

``InvalidTransaction`` and its subclasses are how a transaction is rejected:
the block goes on, the transaction's effects are discarded and its receipt
carries ``code`` and the message. ``InvalidBlock`` rejects a whole block
(header out of sequence, time going backwards). Anything else raised inside the
transition is a bug. The root, ``TxError``, is the wire layer's, so a caller
can catch every expected failure of the project with one ``except``.
"""

from __future__ import annotations

from tx.errors import TxError


class ClearinghouseError(TxError):
    """Base of the state transition's errors."""

    code = "CLEARINGHOUSE"


class InvalidBlock(ClearinghouseError):
    code = "INVALID_BLOCK"


class InvalidGenesis(InvalidBlock):
    """A genesis that breaks a rule of protocol §5 (publishers unsorted, unknown policy, duplicate market
    names, a price or price parameter out of bounds): the chain cannot start. Same code as any bad block."""


class InvalidTransaction(ClearinghouseError):
    """A transaction that is rejected; the block continues without it."""

    code = "INVALID_TX"


def _tx_error(name: str, code: str, doc: str) -> type[InvalidTransaction]:
    cls = type(name, (InvalidTransaction,), {"code": code, "__doc__": doc})
    return cls


BadNonce = _tx_error("BadNonce", "BAD_NONCE", "Nonce reused, too old, or outside the time window.")
Unauthorized = _tx_error("Unauthorized", "UNAUTHORIZED", "The signer may not perform this action.")
InsufficientBalance = _tx_error("InsufficientBalance", "INSUFFICIENT_BALANCE", "Not enough free collateral.")
InsufficientMargin = _tx_error("InsufficientMargin", "INSUFFICIENT_MARGIN", "The action would breach a margin requirement.")
UnknownMarket = _tx_error("UnknownMarket", "UNKNOWN_MARKET", "No market with that index.")
InvalidPrice = _tx_error("InvalidPrice", "INVALID_PRICE", "Price off tick, too many significant figures, or out of bounds.")
InvalidSize = _tx_error("InvalidSize", "INVALID_SIZE", "Size is zero, off lot, or out of bounds.")
BelowMinNotional = _tx_error("BelowMinNotional", "MIN_NOTIONAL", "Order notional below the market minimum.")
InvalidLeverage = _tx_error("InvalidLeverage", "INVALID_LEVERAGE", "Leverage outside 1..max or not allowed now.")
OrderNotFound = _tx_error("OrderNotFound", "ORDER_NOT_FOUND", "No such open order for this account.")
DuplicateCloid = _tx_error("DuplicateCloid", "DUPLICATE_CLOID", "Client order id already in use by an open order.")
ReduceOnlyViolation = _tx_error("ReduceOnlyViolation", "REDUCE_ONLY", "A reduce-only order would not reduce the position.")
WouldTakeALO = _tx_error("WouldTakeALO", "ALO_WOULD_TAKE", "A post-only order would have matched.")
FOKNotFilled = _tx_error("FOKNotFilled", "FOK_NOT_FILLED", "A fill-or-kill order could not fill completely.")
InvalidMarginMode = _tx_error("InvalidMarginMode", "INVALID_MARGIN_MODE", "Margin mode change or isolated-margin move not allowed.")
InvalidAmount = _tx_error("InvalidAmount", "INVALID_AMOUNT", "Amount is zero, negative where not allowed, or out of bounds.")
InvalidOracle = _tx_error("InvalidOracle", "INVALID_ORACLE", "Oracle update malformed (duplicate or unknown market, bad price).")
NoSuchAccount = _tx_error("NoSuchAccount", "NO_SUCH_ACCOUNT", "The acting account has never been funded (or was emptied and removed).")
ReservedAccount = _tx_error("ReservedAccount", "RESERVED_ACCOUNT", "System accounts cannot be the target of this action.")
LimitExceeded = _tx_error("LimitExceeded", "LIMIT_EXCEEDED", "A per-account or per-market limit would be exceeded.")
DecodeRejected = _tx_error("DecodeRejected", "DECODE", "Transaction bytes are malformed.")
NonCanonicalRejected = _tx_error("NonCanonicalRejected", "NON_CANONICAL", "Transaction bytes are not canonical.")
SignatureRejected = _tx_error("SignatureRejected", "BAD_SIGNATURE", "Signature malformed or not recoverable.")
HighSRejected = _tx_error("HighSRejected", "HIGH_S", "Signature is not in low-s form.")
