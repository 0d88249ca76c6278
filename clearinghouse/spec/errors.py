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
    """Base of the state transition's errors (protocol §13.1)."""

    code = "CLEARINGHOUSE"


class InvalidBlock(ClearinghouseError):
    """A block that cannot be applied at all (height out of sequence, time going backwards, a bad
    genesis): nothing of it is committed (protocol §6.3, §13.2)."""

    code = "INVALID_BLOCK"


class InvalidGenesis(InvalidBlock):
    """A genesis that breaks a rule of protocol §5 (publishers unsorted, unknown policy, duplicate market
    names, a price or price parameter out of bounds): the chain cannot start. Same code as any bad block."""


class InvalidTransaction(ClearinghouseError):
    """A transaction that is rejected; the block continues without it (protocol §13.1)."""

    code = "INVALID_TX"


class BadNonce(InvalidTransaction):
    """Nonce reused, too old, or outside the time window (protocol §13.1)."""

    code = "BAD_NONCE"


class Unauthorized(InvalidTransaction):
    """The signer may not perform this action (protocol §13.1)."""

    code = "UNAUTHORIZED"


class InsufficientBalance(InvalidTransaction):
    """Not enough free collateral (protocol §13.1)."""

    code = "INSUFFICIENT_BALANCE"


class InsufficientMargin(InvalidTransaction):
    """The action would breach a margin requirement (protocol §13.1)."""

    code = "INSUFFICIENT_MARGIN"


class UnknownMarket(InvalidTransaction):
    """No market with that index (protocol §13.1)."""

    code = "UNKNOWN_MARKET"


class InvalidPrice(InvalidTransaction):
    """Price off tick, too many significant figures, or out of bounds (protocol §13.1)."""

    code = "INVALID_PRICE"


class InvalidSize(InvalidTransaction):
    """Size is zero, off lot, or out of bounds (protocol §13.1)."""

    code = "INVALID_SIZE"


class BelowMinNotional(InvalidTransaction):
    """Order notional below the market minimum (protocol §13.1)."""

    code = "MIN_NOTIONAL"


class InvalidLeverage(InvalidTransaction):
    """Leverage outside 1..max or not allowed now (protocol §13.1)."""

    code = "INVALID_LEVERAGE"


class OrderNotFound(InvalidTransaction):
    """No such open order for this account (protocol §13.1)."""

    code = "ORDER_NOT_FOUND"


class DuplicateCloid(InvalidTransaction):
    """Client order id already in use by an open order (protocol §13.1)."""

    code = "DUPLICATE_CLOID"


class ReduceOnlyViolation(InvalidTransaction):
    """A reduce-only order would not reduce the position (protocol §13.1)."""

    code = "REDUCE_ONLY"


class WouldTakeALO(InvalidTransaction):
    """A post-only order would have matched (protocol §13.1)."""

    code = "ALO_WOULD_TAKE"


class FOKNotFilled(InvalidTransaction):
    """A fill-or-kill order could not fill completely (protocol §13.1)."""

    code = "FOK_NOT_FILLED"


class InvalidMarginMode(InvalidTransaction):
    """Margin mode change or isolated-margin move not allowed (protocol §13.1)."""

    code = "INVALID_MARGIN_MODE"


class InvalidAmount(InvalidTransaction):
    """Amount is zero, negative where not allowed, or out of bounds (protocol §13.1)."""

    code = "INVALID_AMOUNT"


class InvalidOracle(InvalidTransaction):
    """Oracle update malformed (duplicate or unknown market, bad price; protocol §13.1)."""

    code = "INVALID_ORACLE"


class NoSuchAccount(InvalidTransaction):
    """The acting account has never been funded (or was emptied and removed; protocol §13.1)."""

    code = "NO_SUCH_ACCOUNT"


class ReservedAccount(InvalidTransaction):
    """System accounts cannot be the target of this action (protocol §13.1)."""

    code = "RESERVED_ACCOUNT"


class LimitExceeded(InvalidTransaction):
    """A per-account or per-market limit would be exceeded (protocol §13.1)."""

    code = "LIMIT_EXCEEDED"


class DecodeRejected(InvalidTransaction):
    """Transaction bytes are malformed (protocol §13.1)."""

    code = "DECODE"


class NonCanonicalRejected(InvalidTransaction):
    """Transaction bytes are not canonical (protocol §13.1)."""

    code = "NON_CANONICAL"


class SignatureRejected(InvalidTransaction):
    """Signature malformed or not recoverable (protocol §13.1)."""

    code = "BAD_SIGNATURE"


class HighSRejected(InvalidTransaction):
    """Signature is not in low-s form (protocol §13.1)."""

    code = "HIGH_S"
