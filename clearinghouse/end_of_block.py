"""End-of-block work, in the fixed order of RULEBOOK §4 and docs/protocol.md.

1. oracle prices (median of the block's submissions) and mark prices;
2. trigger (TP/SL) orders that the new mark crosses;
3. funding (sampling, and hourly settlement);
4. the liquidation waterfall (market liquidation, insurance fund, backstop);
5. auto-deleveraging of whatever is still underwater.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import InvalidTransaction
from .working_state import WorkingState

Step = Callable[[WorkingState, int], list[Any]]

STEPS: list[tuple[str, Step]] = []
"""(name, step) in execution order; each later module appends its step here at import."""


def atomically(ws: WorkingState, events: list[Any], body: Callable[[], Any]) -> InvalidTransaction | None:
    """Run ``body`` as one journalled unit (a transaction, a liquidated unit, a fired trigger).

    On ``InvalidTransaction`` every write of the unit and every event it appended to
    ``events`` are undone and the error is returned; otherwise the writes stand and
    None is returned. Matching inside ``body`` may use savepoints of this journal.
    """
    ws.begin_tx()
    events_before = len(events)
    try:
        body()
    except InvalidTransaction as exc:
        ws.rollback_tx()
        del events[events_before:]
        return exc
    ws.commit_tx()
    return None


def register_step(name: str, step: Step, *, order: int) -> None:
    """Insert a named step; ``order`` fixes its place regardless of import order."""
    STEPS.append((f"{order:03d}:{name}", step))
    STEPS.sort(key=lambda s: s[0])


def run(ws: WorkingState, time_ms: int) -> list[Any]:
    events: list[Any] = []
    for _name, step in STEPS:
        events.extend(step(ws, time_ms))
    return events
