"""Every scenario under fixtures/scenarios runs green, verifies, and keeps the invariants
after every block; the seed examples show the article's numbers (protocol §12.9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clearinghouse.chain.engine import Engine, replay_log
from clearinghouse.tools.cli import main as cli_main
from clearinghouse.tools.invariants import check_all
from clearinghouse.tools.scenario.parse import load_scenario
from clearinghouse.tools.scenario.run import run_scenario
from state import MemoryStore

SCENARIOS = sorted((Path(__file__).resolve().parent.parent / "fixtures" / "scenarios").glob("*.toml"))
USDC = 1_000_000


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_expectations_hold_and_invariants_after_every_block(path: Path, tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    run = run_scenario(load_scenario(str(path)), str(log))
    failed = [e for e in run.expects if not e.ok]
    assert not failed, "\n".join(f"step {e.step}: {e.message}" for e in failed)
    assert run.expects, "a fixture scenario must state what it expects"

    store = MemoryStore()
    engine = Engine(store)
    heights = []

    def after_block(entry, executed):
        heights.append(entry.block.header.height)
        violations = check_all(store, engine.view())
        assert not violations, f"height {entry.block.header.height}: {violations}"

    replay_log(engine, str(log), on_block=after_block)
    assert heights == list(range(1, len(heights) + 1))
    assert cli_main(["verify", str(log)]) == 0


def _events(report: dict, type_name: str) -> list[dict]:
    return [e for b in report["blocks"] for e in b["events"] if e["type"] == type_name]


def _run_json(path: Path, capsys) -> dict:
    assert cli_main(["scenario", "run", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_seed_example_1_numbers(capsys) -> None:
    report = _run_json(SCENARIOS[0].parent / "seed_example_1.toml", capsys)
    (cover,) = _events(report, "DeficitCover")
    (queue,) = _events(report, "AdlQueue")
    (fund,) = _events(report, "InsuranceCover")
    # BTC lots are 0.1 BTC and prices are 10^-5 USDC units (sz_decimals 1).
    assert queue["bankruptcy_price"] == 88_200 * 100_000
    assert fund["deficit"] == 600 * USDC and fund["paid"] == 0
    assert cover["size"] == 3 and cover["reference_price"] == 88_200 * 100_000
    assert cover["realized_pnl"] == 690 * USDC and cover["covered"] == 600 * USDC
    assert report["accounts"]["loser"]["cash"] == (10_000 - 1_800) * USDC


def test_seed_example_2_numbers(capsys) -> None:
    report = _run_json(SCENARIOS[0].parent / "seed_example_2.toml", capsys)
    (cover,) = _events(report, "DeficitCover")
    (queue,) = _events(report, "AdlQueue")
    (fund,) = _events(report, "InsuranceCover")
    # ETH lots are 1 ETH and prices are micro-USDC (sz_decimals 0).
    assert queue["bankruptcy_price"] == 3_040 * USDC
    assert fund["deficit"] == 6_000 * USDC and fund["paid"] == 0
    assert cover["rank"] == 2 and cover["size"] == 55 and cover["reference_price"] == 3_040 * USDC
    assert cover["realized_pnl"] == 6_050 * USDC and cover["covered"] == 6_000 * USDC
    assert report["accounts"]["loser"]["cash"] == (20_000 - 16_000) * USDC
