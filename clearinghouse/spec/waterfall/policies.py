"""Liquidation/ADL policies, fixed in genesis (protocol §12.2). Each is a row of switches.

``hyperliquid`` (default)
    Hyperliquid's ranking index; market liquidation in 20% slices above
    100,000 USDC; liquidation orders bounded by what the insurance fund can
    pay; the fund pays deficits while it can; ADL closes underwater positions
    at their bankruptcy price.
``bitmex``
    As ``hyperliquid`` but ranked BitMEX-style (PnL% x effective leverage when
    profitable, PnL% / effective leverage when losing).
``seed``
    The article's simplified model (protocol §12.9): whole-position market
    liquidation bounded only by a 10% slippage limit (fills may go beyond
    bankruptcy), the fund pays a deficit only in full, and a remaining deficit
    is covered by the deficit-cover rule (adl.cover_with_winners). There is no
    backstop (the article has none, and a backstop would hand the fund the very
    deficit it declined): what the book cannot absorb waits for the next block,
    and a unit still below zero with positions is deleveraged at its bankruptcy
    price.
``pro-rata``, ``risk-water-filling``, ``clawback``
    Liquidation as ``hyperliquid`` (same switches, ranking only for the queue
    indicator); step 50 allocates each underwater position differently
    (protocol §12.13-§12.15): in proportion to what each winner can give
    (``pro-rata``), most leveraged winners first down to a common leverage
    (``risk-water-filling``), or, positions left open, cash taken from
    profitable positions in proportion to their profit (``clawback``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Policy:
    """A waterfall policy, fixed in genesis: the ranking and which steps run and how (protocol §12.2)."""

    name: str
    ranking: str
    partial_liquidation: bool
    fund_bounded_liquidation: bool
    fund_all_or_nothing: bool
    deficit_cover: bool
    backstop: bool
    adl: str = "queue"
    """How step 50 shares an underwater unit's loss (protocol §12.7, §12.13-§12.15): ``queue`` (the
    ranked walk), ``pro_rata``, ``water_filling`` or ``clawback``; a key of ``adl.ALLOCATORS``."""


_HYPERLIQUID = Policy(
    "hyperliquid",
    "hyperliquid",
    partial_liquidation=True,
    fund_bounded_liquidation=True,
    fund_all_or_nothing=False,
    deficit_cover=False,
    backstop=True,
)
"""Hyperliquid's switches; ``bitmex`` and the three allocation policies differ from it only where named."""

POLICIES: dict[str, Policy] = {
    "hyperliquid": _HYPERLIQUID,
    "bitmex": replace(_HYPERLIQUID, name="bitmex", ranking="bitmex"),
    "seed": Policy(
        "seed",
        "hyperliquid",
        partial_liquidation=False,
        fund_bounded_liquidation=False,
        fund_all_or_nothing=True,
        deficit_cover=True,
        backstop=False,
    ),
    "pro-rata": replace(_HYPERLIQUID, name="pro-rata", adl="pro_rata"),
    "risk-water-filling": replace(_HYPERLIQUID, name="risk-water-filling", adl="water_filling"),
    "clawback": replace(_HYPERLIQUID, name="clawback", adl="clawback"),
}


def policy_of(name: str) -> Policy:
    """The policy named in the genesis (``Chain.policy``; protocol §12.2).

    Raises:
        KeyError: no such policy (a genesis naming one is ``InvalidGenesis``, so never from a chain).
    """
    return POLICIES[name]
