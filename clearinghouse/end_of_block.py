"""End-of-block work, in the fixed order of protocol §6.8.

After the block's transactions, ``run`` calls each step by name, in this order:

1. ``prices_step`` (oracle.py): oracle prices and mark prices, protocol §11.3;
2. ``run_triggers`` (triggers.py): TP/SL orders the new mark crosses, protocol §10.8;
3. ``funding_step`` (funding.py): premium sampling and hourly settlement, protocol §11.5;
4. ``run_liquidations`` (liquidation.py): the liquidation waterfall's trigger, market
   liquidation, insurance fund cover and backstop, protocol §12.3-§12.6;
5. ``run_adl`` (adl.py): auto-deleveraging of every unit still below zero, protocol §12.7.

Each step reads the state the previous one left, so liquidation sees this
block's mark prices and funding. There is no registry: adding a step means
adding a call here and a line to protocol §6.8.
"""

from __future__ import annotations

from typing import Any

from .adl import run_adl
from .funding import funding_step
from .liquidation import run_liquidations
from .oracle import prices_step
from .triggers import run_triggers
from .working_state import WorkingState


def run(ws: WorkingState, time_ms: int) -> list[Any]:
    """Run the end-of-block steps in their fixed order and return their events in emission order."""
    events: list[Any] = []
    events.extend(prices_step(ws, time_ms))
    events.extend(run_triggers(ws, time_ms))
    events.extend(funding_step(ws, time_ms))
    events.extend(run_liquidations(ws, time_ms))
    events.extend(run_adl(ws, time_ms))
    return events
