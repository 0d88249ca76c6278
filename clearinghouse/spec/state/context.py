"""What an action handler is given: the state view, who acts, when, and where events go."""

from __future__ import annotations

from dataclasses import dataclass, field

from clearinghouse.spec.events import BaseEvent
from clearinghouse.spec.state.records import Chain
from clearinghouse.spec.state.working_state import WorkingState


@dataclass
class TxContext:
    """One transaction's execution context (protocol §6.5).

    ``signer`` is the recovered key's address; ``account`` is whose state the
    action changes (the agent's owner when an agent signs). Handlers append
    events to ``events``; they are discarded with the state if the
    transaction is rejected.
    """

    ws: WorkingState
    chain: Chain
    tx_index: int
    signer: bytes
    account: bytes
    time_ms: int
    events: list[BaseEvent] = field(default_factory=list)

    def emit(self, event: BaseEvent) -> None:
        """Append ``event`` to the transaction's events (protocol §6.7)."""
        self.events.append(event)
