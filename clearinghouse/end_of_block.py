"""End-of-block work, in the fixed order of RULEBOOK §4 and docs/protocol.md.

1. oracle prices (median of the block's submissions) and mark prices;
2. trigger (TP/SL) orders that the new mark crosses;
3. funding (sampling, and hourly settlement);
4. the liquidation waterfall (market liquidation, insurance fund, backstop);
5. auto-deleveraging of whatever is still underwater.
"""

from __future__ import annotations

from typing import Any, Callable

from .working_state import WorkingState

Step = Callable[[WorkingState, int], list[Any]]

STEPS: list[tuple[str, Step]] = []
"""(name, step) in execution order; each later module appends its step here at import."""


def register_step(name: str, step: Step, *, order: int) -> None:
    """Insert a named step; ``order`` fixes its place regardless of import order."""
    STEPS.append((f"{order:03d}:{name}", step))
    STEPS.sort(key=lambda s: s[0])


def run(ws: WorkingState, time_ms: int) -> list[Any]:
    events: list[Any] = []
    for _name, step in STEPS:
        events.extend(step(ws, time_ms))
    return events
