"""Transaction actions: a tagged union that grows by issue.

Every action is a frozen msgspec Struct encoded as a msgpack array whose first
element is the integer tag (``array_like=True``).  Field order is the wire
format; new actions get new tags, existing actions never change shape (a
changed action gets a new tag).  ``forbid_unknown_fields`` makes trailing
extra elements a decode error instead of being silently dropped.

Amounts are micro-USDC (1e-6); sizes are integer lots of 10^-sz_decimals of
the base asset; prices are integers in units of 10^-(6 - sz_decimals) USDC, so
that price x size is exactly micro-USDC (protocol §2.1).
"""

from __future__ import annotations

from typing import Annotated, Union

import msgspec
from msgspec import Meta

from .types import I64, U32, U64, Address, PosU64

MAX_ORACLE_PRICES = 64
"""At most this many prices in one oracle update."""


class _Action(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag_field="t"):
    """Base of all actions (no fields)."""


# ---------------------------------------------------------------- collateral
class Deposit(_Action, tag=1, frozen=True):
    """Credit ``amount`` micro-USDC to ``to``. Only the genesis bridge may sign it.

    ``ref`` is the bridge's own reference (e.g. the L1 deposit id), echoed in the
    event so an auditor can match deposits to the bridge.
    """

    to: Address
    amount: PosU64
    ref: U64


class Withdraw(_Action, tag=2, frozen=True):
    """Debit the signer's cross collateral and release it to ``destination`` off-chain."""

    amount: PosU64
    destination: Address


class Transfer(_Action, tag=3, frozen=True):
    """Move cross collateral from the signer to another account."""

    to: Address
    amount: PosU64


# ---------------------------------------------------------------- trading
TIF_GTC = 0
TIF_IOC = 1
TIF_FOK = 2
TIF_ALO = 3
TIF_NAMES = {TIF_GTC: "GTC", TIF_IOC: "IOC", TIF_FOK: "FOK", TIF_ALO: "ALO"}


class PlaceOrder(_Action, tag=10, frozen=True):
    """A limit order. ``tif``: 0 GTC, 1 IOC, 2 FOK, 3 ALO (post-only). ``cloid`` 0 = none."""

    market: U32
    is_buy: bool
    price: PosU64
    size: PosU64
    tif: Annotated[int, Meta(ge=0, le=3)]
    reduce_only: bool
    cloid: U64


class MarketOrder(_Action, tag=11, frozen=True):
    """An IOC order whose limit is the mark price moved by ``slippage_bps`` against the taker."""

    market: U32
    is_buy: bool
    size: PosU64
    slippage_bps: Annotated[int, Meta(ge=0, le=5000)]
    reduce_only: bool
    cloid: U64


class TriggerOrder(_Action, tag=12, frozen=True):
    """A take-profit or stop-loss that fires when the mark price crosses ``trigger_price``.

    ``limit_price`` 0 means it fires as a market order (10% slippage bound);
    otherwise as an IOC limit at ``limit_price``.
    """

    market: U32
    is_buy: bool
    size: PosU64
    trigger_price: PosU64
    is_take_profit: bool
    limit_price: U64
    reduce_only: bool
    cloid: U64


class Cancel(_Action, tag=13, frozen=True):
    """Cancel one of the account's orders (resting or trigger) by order id."""

    market: U32
    oid: U64


class CancelByCloid(_Action, tag=14, frozen=True):
    """Cancel one of the account's orders by client order id."""

    market: U32
    cloid: PosU64


class Modify(_Action, tag=15, frozen=True):
    """Replace a resting order's price and size (keeps side, TIF, reduce-only; loses priority)."""

    market: U32
    oid: U64
    price: PosU64
    size: PosU64


class UpdateLeverage(_Action, tag=16, frozen=True):
    """Set the leverage (1..max) and margin mode of the account in one market."""

    market: U32
    leverage: Annotated[int, Meta(ge=1, le=1000)]
    is_cross: bool


class UpdateIsolatedMargin(_Action, tag=17, frozen=True):
    """Move ``delta`` micro-USDC into (positive) or out of (negative) an isolated position."""

    market: U32
    delta: I64


class ApproveAgent(_Action, tag=18, frozen=True):
    """Allow (or revoke) an agent key that may place and cancel orders for the signer."""

    agent: Address
    approve: bool


class OraclePrice(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """One market's oracle price and, optionally (0 = none), an external perp price."""

    market: U32
    oracle_price: PosU64
    external_price: U64


class OracleUpdate(_Action, tag=19, frozen=True):
    """Prices from a genesis oracle publisher; the block uses the median per market."""

    prices: Annotated[list[OraclePrice], Meta(max_length=MAX_ORACLE_PRICES)]


Action = Union[
    Deposit,
    Withdraw,
    Transfer,
    PlaceOrder,
    MarketOrder,
    TriggerOrder,
    Cancel,
    CancelByCloid,
    Modify,
    UpdateLeverage,
    UpdateIsolatedMargin,
    ApproveAgent,
    OracleUpdate,
]

ACTION_TYPES: tuple[type, ...] = Action.__args__  # type: ignore[attr-defined]

AGENT_ALLOWED = (PlaceOrder, MarketOrder, TriggerOrder, Cancel, CancelByCloid, Modify)
"""Actions an approved agent key may sign for its owner (protocol §4.5): trading only."""


def action_name(action: _Action) -> str:
    """The action's type name, for receipts and tables."""
    return type(action).__name__
