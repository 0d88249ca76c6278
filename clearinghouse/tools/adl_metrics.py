"""ADL figures for the policy lab (``clearinghouse whatif``): waves, deficit, budget, haircut, overshoot.

Tooling, not consensus. Every figure is computed exactly, in integers (micro-USDC)
or ``fractions.Fraction`` (shares, Gini), from what a replay observed; decimals
appear only in the rendering (``frac_json``). docs/adl-lab.md defines each one.

Inputs (filled by ``tools/whatif.py``):

* ``BlockObs``: for one block of one replay, the deficit just before step 50,
  the insurance fund's value before step 50 and after the block, the block's
  ADL fills (``AdlStep``, ``DeficitCover``) with the market's mark, direct
  charges (``Haircut``, ``Clawback``, the ``covered`` part of ``DeficitCover``), what is still
  below zero after the block (bad debt left) and, for blocks with ADL, every
  account's equity.
* the equities of the same accounts at the same heights in the replay of the
  same transactions with step 50 disabled (``baseline``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any


@dataclass
class Fill:
    market: int
    counterparty: bytes
    size: int
    price: int
    mark: int

    @property
    def budget(self) -> int:
        """|mark - price| x size: what closing at ``price`` instead of the mark costs the counterparty."""
        return abs(self.mark - self.price) * self.size

    @property
    def notional(self) -> int:
        return self.size * self.price


@dataclass
class BlockObs:
    height: int
    time_ms: int
    deficit: int = 0
    """D_h: Σ max(0, -value) over the units step 50 visits, read just before step 50."""
    fund_before_adl: int = 0
    fund_after: int = 0
    fills: list[Fill] = field(default_factory=list)
    charges: list[tuple[bytes, int]] = field(default_factory=list)
    """Direct charges without a fill: (account, amount) of Haircut and Clawback events and DeficitCover payments."""
    bad_debt_after: int = 0
    equities: dict[bytes, int] | None = None

    @property
    def has_adl(self) -> bool:
        return bool(self.fills or self.charges)


def group_waves(blocks: list[BlockObs], gap_ms: int) -> list[list[BlockObs]]:
    """Blocks with ADL fills or charges, grouped into waves: a new wave starts when the time since
    the previous ADL block exceeds ``gap_ms``."""
    waves: list[list[BlockObs]] = []
    last = None
    for b in blocks:
        if not b.has_adl:
            continue
        if last is None or b.time_ms - last > gap_ms:
            waves.append([])
        waves[-1].append(b)
        last = b.time_ms
    return waves


def gini(values: list[int]) -> Fraction:
    """Gini coefficient of non-negative amounts, exactly: Σ_i Σ_j |x_i - x_j| / (2 n Σ x)
    = 2 Σ_i i x_(i) / (n Σ x) - (n + 1) / n with x sorted ascending, i from 1; 0 for no amounts."""
    xs = sorted(values)
    n, total = len(xs), sum(xs)
    if n == 0 or total == 0:
        return Fraction(0)
    return Fraction(2 * sum(i * x for i, x in enumerate(xs, 1)), n * total) - Fraction(n + 1, n)


def frac_json(f: Fraction | None, places: int = 6) -> dict[str, str] | None:
    """An exact fraction for JSON: ``num``/``den`` and a decimal rounded half away from zero."""
    if f is None:
        return None
    scaled = f * 10**places
    q, r = divmod(abs(scaled.numerator), scaled.denominator)
    if 2 * r >= scaled.denominator:
        q += 1
    sign = "-" if f < 0 else ""
    text = f"{q // 10**places}.{q % 10**places:0{places}d}" if places else str(q)
    return {"num": str(f.numerator), "den": str(f.denominator), "decimal": sign + text}


def haircuts(
    after: dict[bytes, int], after_base: dict[bytes, int], before: dict[bytes, int], before_base: dict[bytes, int]
) -> dict[bytes, int]:
    """Per account: max(0, Δ(after) - Δ(before)) with Δ = equity without ADL - equity with ADL."""
    out = {}
    for a in sorted(set(after) | set(after_base)):
        delta_after = after_base.get(a, 0) - after.get(a, 0)
        delta_before = before_base.get(a, 0) - before.get(a, 0)
        h = delta_after - delta_before
        if h > 0:
            out[a] = h
    return out


def span_figures(blocks: list[BlockObs], hits: dict[bytes, int], base_equity: dict[bytes, int]) -> dict[str, Any]:
    """The figures of a wave (or of every wave together) from its blocks and per-account haircuts."""
    fills = [f for b in blocks for f in b.fills]
    charges = [c for b in blocks for c in b.charges]
    d = sum(b.deficit for b in blocks)
    budget = sum(f.budget for f in fills) + sum(amount for _a, amount in charges)
    h = sum(hits.values())
    shares = [Fraction(v, base_equity[a]) for a, v in hits.items() if base_equity.get(a, 0) > 0]
    counterparties = {f.counterparty for f in fills} | {a for a, _v in charges}
    return {
        "first_height": blocks[0].height if blocks else None,
        "last_height": blocks[-1].height if blocks else None,
        "start_ms": blocks[0].time_ms if blocks else None,
        "end_ms": blocks[-1].time_ms if blocks else None,
        "blocks": len(blocks),
        "deficit": d,
        "budget": budget,
        "haircut": h,
        "overshoot": h - budget,
        "accounts_hit": len(hits),
        "counterparties": len(counterparties),
        "adl_fills": len(fills),
        "notional_closed": sum(f.notional for f in fills),
        "largest_haircut_share": frac_json(max(shares)) if shares else None,
        "gini": frac_json(gini(list(hits.values()))),
        "fund_before": blocks[0].fund_before_adl if blocks else None,
        "fund_after": blocks[-1].fund_after if blocks else None,
        "bad_debt_left": blocks[-1].bad_debt_after if blocks else None,
    }


def policy_figures(
    blocks: list[BlockObs], baseline: dict[int, dict[bytes, int]], gap_ms: int, final_bad_debt: int
) -> dict[str, Any]:
    """Per-wave and total figures of one policy's replay against its ADL-disabled baseline.

    ``baseline[h]`` are the equities at height ``h`` with step 50 disabled; it must cover the
    last height of every wave.
    """
    waves = group_waves(blocks, gap_ms)
    out_waves = []
    prev: dict[bytes, int] = {}
    prev_base: dict[bytes, int] = {}
    total_hits: dict[bytes, int] = {}
    for n, wave in enumerate(waves, 1):
        end = wave[-1]
        assert end.equities is not None
        base = baseline[end.height]
        hits = haircuts(end.equities, base, prev, prev_base)
        fig = span_figures(wave, hits, base)
        fig["wave"] = n
        out_waves.append(fig)
        for a, v in hits.items():
            total_hits[a] = total_hits.get(a, 0) + v
        prev, prev_base = end.equities, base
    all_blocks = [b for w in waves for b in w]
    total = span_figures(all_blocks, total_hits, baseline[waves[-1][-1].height] if waves else {})
    total["waves"] = len(waves)
    total["bad_debt_left"] = final_bad_debt
    if not waves:
        total.update(fund_before=None, fund_after=None)
    return {"waves": out_waves, "total": total}


# ---------------------------------------------------------------- display of the figures
AMOUNT_KEYS = {
    "deficit",
    "budget",
    "haircut",
    "overshoot",
    "notional_closed",
    "fund_after",
    "fund_before",
    "bad_debt_left",
}


def usdc(v: int | None) -> str:
    if v is None:
        return "-"
    sign = "-" if v < 0 else ""
    q, r = divmod(abs(v), 1_000_000)
    return f"{sign}{q:,}.{r // 10_000:02d}"


def cell(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if key in AMOUNT_KEYS:
        return usdc(v)
    if isinstance(v, dict):
        return v["decimal"]
    return str(v)
