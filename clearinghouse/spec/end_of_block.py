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

``tool_hook`` (NOT consensus): a context variable that only the ADL policy lab
(``clearinghouse whatif``, ``tools/whatif.py``) sets, in its own process, to
observe the state just before step 50 and, for its counterfactual "no ADL"
replay, to skip step 50. Blocks produced or replayed under a hook that skips
ADL are not this chain's blocks (their roots differ): the producer, replay and
verify never set it, and no genesis field or policy can turn ADL off. The
hook may also carry a memo of recovered signers (``ToolHook.signers``) that the
lab's replays of the same transactions share: the same signers either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from clearinghouse.spec.events import BaseEvent
from clearinghouse.spec.prices.funding import funding_step
from clearinghouse.spec.prices.oracle import prices_step
from clearinghouse.spec.state.working_state import WorkingState
from clearinghouse.spec.trading.triggers import run_triggers
from clearinghouse.spec.waterfall.adl import run_adl
from clearinghouse.spec.waterfall.liquidation import run_liquidations


@dataclass(frozen=True)
class ToolHook:
    """Non-consensus instrumentation for the ADL policy lab (see the module docstring; protocol §6.8)."""

    before_adl: Callable[[WorkingState, int], None] | None = None
    """Called with the state just before step 50; must only read."""
    adl_disabled: bool = False
    """Skip step 50 (a counterfactual replay: its roots are not the chain's)."""
    signers: dict[bytes, bytes] | None = None
    """A memo of signature recovery shared by the lab's replays of the same transactions:
    signing preimage + signature -> signer (``block.recover``). Recovery is a pure function of
    both, so the memo changes no outcome; only successes are kept (a failure is recomputed)."""


_TOOL_HOOK: ContextVar[ToolHook | None] = ContextVar("clearinghouse_tool_hook", default=None)


def current_tool_hook() -> ToolHook | None:
    """The hook set by ``tool_hook`` in this context, if any (tools only) (protocol §6.8)."""
    return _TOOL_HOOK.get()


@contextmanager
def tool_hook(hook: ToolHook) -> Iterator[None]:
    """Run the enclosed transitions with ``hook`` (tools only; never in produce, replay or verify; protocol §6.8)."""
    token = _TOOL_HOOK.set(hook)
    try:
        yield
    finally:
        _TOOL_HOOK.reset(token)


def run(ws: WorkingState, time_ms: int) -> list[BaseEvent]:
    """Run the end-of-block steps in their fixed order and return their events in emission order (protocol §6.8)."""
    events: list[BaseEvent] = []
    events.extend(prices_step(ws, time_ms))
    events.extend(run_triggers(ws, time_ms))
    events.extend(funding_step(ws, time_ms))
    events.extend(run_liquidations(ws, time_ms))
    hook = _TOOL_HOOK.get()
    if hook is not None:  # tools only (whatif): never set by the producer, replay or verify
        if hook.before_adl is not None:
            hook.before_adl(ws, time_ms)
        if hook.adl_disabled:
            return events
    events.extend(run_adl(ws, time_ms))
    return events
