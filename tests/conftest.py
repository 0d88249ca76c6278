"""Shared test set-up: hypothesis profiles, the ``soak`` switch, chain-building fixtures.

Hypothesis profiles (selected once, at start-up):

* ``default``: about 50 examples per property, no deadline (fast local runs);
* ``ci``: hypothesis' built-in ``ci`` profile (derandomized, no example
  database, blobs printed for reproduction, ``too_slow`` suppressed, no
  deadline) with 100 examples; loaded when the ``CI`` environment variable is set;
* ``soak``: 2000 examples; loaded with ``--soak`` or ``CLEARINGHOUSE_SOAK=1``,
  which also runs the tests marked ``@pytest.mark.soak`` (skipped otherwise).

An explicit ``--hypothesis-profile NAME`` always wins.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parent.parent
# The tests import the project from the checkout when it is not installed.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from clearinghouse.chain.producer import Producer  # noqa: E402
from clearinghouse.spec.events import Receipt  # noqa: E402
from clearinghouse.tools.demo import USDC, demo_genesis  # noqa: E402

settings.register_profile("default", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    parent=settings.get_profile("ci"),
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("soak", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def liquidation_index_audit() -> Any:
    """Every test runs steps 40 and 50 under the test-only full scan of ``index_audit``: the
    liquidation index never misses a liquidatable or below-zero unit (issue 10)."""
    from index_audit import audited

    with audited():
        yield


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run long soak tests (marked 'soak') and hypothesis' soak profile (2000 examples)",
    )


def soak_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--soak") or os.environ.get("CLEARINGHOUSE_SOAK"))


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_profile", default=None):
        return  # hypothesis' own plugin loads the profile named on the command line
    if soak_enabled(config):
        settings.load_profile("soak")
    elif os.environ.get("CI"):
        settings.load_profile("ci")
    else:
        settings.load_profile("default")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if soak_enabled(config):
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak or CLEARINGHOUSE_SOAK=1")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


# ---------------------------------------------------------------- chain helpers
def receipts_of(executed: Any) -> list[Receipt]:
    """The receipts of an executed block, in execution order."""
    return [e for e in executed.events if isinstance(e, Receipt)]


def codes_of(executed: Any) -> list[str]:
    """Receipt codes of an executed block, by transaction index (producer order)."""
    return [r.code for r in sorted(receipts_of(executed), key=lambda r: r.tx_index)]


def cash_of(p: Producer, name: str) -> int:
    """Cross cash of wallet ``name`` in ``p``'s committed state."""
    from clearinghouse.spec.state.accounts import get_account

    return get_account(p.engine.view(), p.wallet(name).address).cash


def assert_rejected_without_effect(p: Producer, txs: list[bytes], codes: list[str]) -> Any:
    """Produce a block of ``txs`` and check it is as if the transactions were never sent.

    Every receipt carries the given code, and the block's net writes and the
    new state root equal those of an empty block at the same height and time
    (end-of-block work such as mark prices still runs, so "no change" means
    "no change beyond an empty block's"). Returns the executed block.
    """
    engine = p.engine
    empty = engine.execute(engine.height + 1, p.time_ms + 1000, [])
    engine.reset_index()
    empty_root = engine.preview_root(empty)
    executed = p.block(txs)
    assert codes_of(executed) == codes
    assert executed.changes == empty.changes
    assert engine.store.root == empty_root
    return executed


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m clearinghouse.tools.cli`` child processes run from any directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("CLEARINGHOUSE_DEBUG", None)
    env.update(extra)
    return env


@pytest.fixture
def producer(tmp_path: Path) -> Callable[..., Producer]:
    """Factory of producers on ``clearinghouse.tools.demo.demo_genesis()``.

    ``producer(log=False, store=None, genesis=None, fund=None)``: ``log=True``
    writes ``tmp_path/chainN.log`` (the path is ``p.log_path``); ``fund`` maps
    wallet names to micro-USDC amounts deposited by the bridge in block 1.
    Every producer made is closed at teardown.
    """
    made: list[Producer] = []

    def make(
        *, log: bool = False, store: Any = None, genesis: Any = None, fund: dict[str, int] | None = None
    ) -> Producer:
        path = tmp_path / f"chain{len(made)}.log" if log else None
        p = Producer(genesis if genesis is not None else demo_genesis(), path, store=store)
        p.log_path = path  # type: ignore[attr-defined]
        made.append(p)
        if fund:
            from tx.actions import Deposit

            bridge = p.wallet("bridge")
            t = p.time_ms + 1000
            ex = p.block(
                [
                    bridge.sign(Deposit(to=p.wallet(name).address, amount=amount, ref=i), t)
                    for i, (name, amount) in enumerate(sorted(fund.items()))
                ]
            )
            assert codes_of(ex) == ["OK"] * len(fund)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def funded(producer: Callable[..., Producer]) -> Producer:
    """A producer whose alice, bob and carol hold 1,000 USDC each (block 1)."""
    return producer(fund={"alice": 1_000 * USDC, "bob": 1_000 * USDC, "carol": 1_000 * USDC})


@pytest.fixture(scope="session")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo log, built once per session (read-only: copy it before changing it)."""
    from clearinghouse.tools.demo import build_demo_log

    path = tmp_path_factory.mktemp("demo") / "demo.log"
    build_demo_log(path)
    return path


# ---------------------------------------------------------------- figures reported after the run
# Some tests print what they ran (bad inputs rejected, kills survived, examples tried) inside
# ``capsys.disabled()``. Printed there, the lines land among pytest's progress dots; instead they
# are collected and shown in one "clearinghouse figures" section at the end of the run (or printed
# in place with -v or -s, where the output is line by line anyway).
FIGURES: list[str] = []


class _FigureCapture:
    """``capsys`` whose ``disabled()`` collects the printed lines for the end-of-run section."""

    def __init__(self, inner: Any, live: bool) -> None:
        self._inner = inner
        self._live = live

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def disabled(self) -> Any:
        import contextlib
        import io

        if self._live:
            return self._inner.disabled()

        @contextlib.contextmanager
        def collect() -> Any:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                yield
            FIGURES.extend(line for line in buf.getvalue().splitlines() if line.strip())

        return collect()


@pytest.fixture
def capsys(capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> Any:  # noqa: F811 (extends pytest's)
    config = request.config
    live = config.getoption("verbose") > 0 or config.getoption("capture") == "no"
    return _FigureCapture(capsys, live)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("clearinghouse figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
