"""Compiling a scenario into signed blocks on a producer (writing its log) and running its
expectations: deterministic, so the same file gives the same log bytes and roots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clearinghouse.tools.scenario.model import Scenario, Step
from tx import actions as A
from tx.signing import Signer


# ---------------------------------------------------------------- running
@dataclass
class BlockRecord:
    height: int
    time_ms: int
    events: list[Any]
    steps: list[int]
    notes: list[str]


@dataclass
class ExpectResult:
    step: int
    note: str
    height: int
    check: str
    ok: bool
    message: str


class ScenarioRun:
    """Compiles a scenario into blocks on a producer (writing a log) and evaluates its expectations.

    Blocks: the open block collects the transactions of consecutive steps;
    ``block`` produces it (even empty), ``advance`` produces it if it has
    transactions and puts the next block ``seconds`` later (consecutive
    advances add up), ``expect`` produces it if it has transactions and then
    checks. Without ``advance`` blocks are ``block_seconds`` apart.
    Nonces come from each wallet: the block time in ms, then +1 per
    transaction of the same signer.
    """

    def __init__(self, scenario: Scenario, log_path: str) -> None:
        from clearinghouse.chain.producer import Producer

        self.scenario = scenario
        self.log_path = log_path
        self.producer = Producer(scenario.genesis(), log_path, overwrite=True)
        self.wallets: dict[str, Any] = {}
        self.pending: list[bytes] = []
        self.pending_steps: list[int] = []
        self.pending_notes: list[str] = []
        self.last_ms = scenario.start_ms
        self.gap_ms = scenario.block_ms
        self.advanced = False
        self.blocks: list[BlockRecord] = []
        self.expects: list[ExpectResult] = []
        self._deposit_ref = 0

    # -- state
    def view(self) -> Any:
        return self.producer.engine.view()

    def open_time(self) -> int:
        return self.last_ms + self.gap_ms

    def wallet(self, name: str) -> Any:
        w = self.wallets.get(name)
        if w is None:
            w = self.wallets[name] = self.producer.wallet(name)
        return w

    # -- blocks
    def add(self, signer: str, action: Any) -> None:
        if isinstance(action, tuple) and action[0] == "deposit":
            _, to, amount, ref = action
            if ref == 0:
                self._deposit_ref += 1
                ref = self._deposit_ref
            action = A.Deposit(to=to, amount=amount, ref=ref)
        self.pending.append(self.wallet(signer).sign(action, self.open_time()))

    def produce(self) -> BlockRecord:
        t = self.open_time()
        executed = self.producer.block(self.pending, time_ms=t)
        rec = BlockRecord(
            height=executed.height,
            time_ms=t,
            events=list(executed.events),
            steps=self.pending_steps,
            notes=self.pending_notes,
        )
        self.blocks.append(rec)
        self.pending, self.pending_steps, self.pending_notes = [], [], []
        self.last_ms = t
        self.gap_ms = self.scenario.block_ms
        self.advanced = False
        return rec

    def run(self) -> ScenarioRun:
        sc = self.scenario
        try:
            if sc.initial_deposits:
                for name in sc.accounts:
                    if name in sc.initial_deposits:
                        self.add(sc.bridge, ("deposit", Signer.from_name(name).address, sc.initial_deposits[name], 0))
                self.pending_notes.append("initial deposits ([accounts])")
                self.produce()
            for step in sc.steps:
                self.step(step)
            if self.pending:
                self.produce()
        finally:
            self.producer.close()
        return self

    def step(self, step: Step) -> None:
        if step.kind == "block":
            if step.note:
                self.pending_notes.append(step.note)
            self.pending_steps.append(step.number)
            self.produce()
        elif step.kind == "advance":
            if self.pending:
                self.produce()
            self.gap_ms = (self.gap_ms if self.advanced else 0) + step.advance_ms
            self.advanced = True
            if step.note:
                self.pending_notes.append(step.note)
        elif step.kind == "expect":
            if self.pending:
                self.produce()
            height = self.producer.engine.height
            for check in step.checks:
                failure = check.evaluate(self)
                self.expects.append(
                    ExpectResult(
                        step=step.number,
                        note=step.note,
                        height=height,
                        check=check.describe(),
                        ok=failure is None,
                        message=failure or "",
                    )
                )
        else:
            for signer, action in step.txs:
                self.add(signer, action)
            self.pending_steps.append(step.number)
            if step.note:
                self.pending_notes.append(step.note)

    @property
    def failed_expects(self) -> list[ExpectResult]:
        return [e for e in self.expects if not e.ok]


def run_scenario(scenario: Scenario, log_path: str) -> ScenarioRun:
    """Compile and run ``scenario``, writing its log to ``log_path`` (overwritten)."""
    return ScenarioRun(scenario, log_path).run()
