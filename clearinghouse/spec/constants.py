"""Consensus constants, in one place (protocol §2.1, §2.3, §11.1, §12.4).

Every number the transition depends on that is not a field of the genesis
market specs. Changing one changes the rules (and, for most, the state roots);
the tools import them from here rather than restating them. Pure: this module
imports nothing.
"""

from __future__ import annotations

# ---------------------------------------------------------------- units (protocol §2.1)
USDC = 1_000_000
"""One USDC in micro-USDC, the unit of every cash amount."""
PPM = 1_000_000
"""Fee rates are in parts per million of notional."""
RATE_SCALE = 10**9
"""Funding rates and premiums are in parts per billion: 1 = 10^-9."""

# ---------------------------------------------------------------- bounds (protocol §2.3)
MAX_OPEN_INTEREST = 2**64 - 1
"""``MarketState.open_interest`` is a u64: total long size may not exceed it."""
MAX_NOTIONAL = 2**62
"""Largest order notional (micro-USDC): keeps cash arithmetic far inside i64."""
NO_TX = 2**32 - 1
"""``tx_index`` of an event caused by end-of-block work, not by a transaction (protocol §6.7)."""
CROSS = 2**32 - 1
"""``market`` value of a waterfall event meaning "the account's cross positions" (protocol §12.11)."""

# ---------------------------------------------------------------- accounts and nonces (protocol §4.6)
MAX_NONCES = 100
"""Hyperliquid keeps each signer's 100 highest nonces."""
NONCE_PAST_WINDOW_MS = 2 * 24 * 3600 * 1000
"""A nonce must be later than block time minus two days."""
NONCE_FUTURE_WINDOW_MS = 1 * 24 * 3600 * 1000
"""A nonce must be earlier than block time plus one day."""

# ---------------------------------------------------------------- orders (protocol §10.1-§10.4)
MAX_SIG_FIGS = 5
"""A price has at most five significant figures."""
PRICE_BAND_PCT = 95
"""A limit price may be at most 95% away from the mark (Hyperliquid's reference-price rule)."""
MAX_OPEN_ORDERS = 1000
"""Resting orders plus triggers one account may hold."""
MARKET_TRIGGER_SLIPPAGE_BPS = 1000
"""A trigger order with no limit price fires as a market order with a 10% slippage bound."""
DEFAULT_LEVERAGE = 20
"""Leverage of a position whose owner never set one (capped at the market maximum)."""

# ---------------------------------------------------------------- liquidation (protocol §12.3-§12.6)
PARTIAL_LIQUIDATION_NOTIONAL = 100_000 * USDC
"""Positions above this notional (at mark) are market-liquidated 20% at a time."""
PARTIAL_LIQUIDATION_PERCENT = 20
"""The share of a large position one liquidation order sends to the book."""
LIQUIDATION_COOLDOWN_MS = 30_000
"""After a partial liquidation, the next 30 s of liquidation orders are for the whole position."""
BACKSTOP_NUM, BACKSTOP_DEN = 2, 3
"""Backstop below 2/3 of maintenance margin."""
LIQUIDATION_SLIPPAGE_BPS = 1000
"""Where no insurance-fund bound applies (policy ``seed``), liquidation orders accept up to 10% from mark."""
