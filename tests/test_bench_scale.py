"""benchmarks/bench_scale.py in a tiny configuration: it runs end to end and its JSON keeps its shape.

Not a timed test: only the structure of the report and what the scenario must do (every account
positioned, the cascade liquidating and reaching ADL) are checked, never a duration.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH = REPO_ROOT / "benchmarks" / "bench_scale.py"
TINY = [
    "--sizes", "60", "--crash-share", "0.25", "--repeat", "1",
    "--tree-sizes", "1000", "--tree-blocks", "1", "--tree-batch", "100",
    "--verify-accounts", "20", "--verify-blocks", "3", "--verify-txs", "40",
]  # fmt: skip


def load_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_scale", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "scale.json"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [sys.executable, str(BENCH), *TINY, "--json", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout)
    assert json.loads(out.read_text()) == printed
    return printed


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def test_blocks_of_each_kind_are_measured(report: dict[str, Any]) -> None:
    bench = load_bench()
    [row] = report["sizes"]
    assert row["accounts"] == 60 and row["risky"] == 15 and row["safe"] == 45
    assert row["positions"] in (60 + 2, None), "every account and the two makers hold a position"
    assert set(row["blocks"]) == set(bench.KINDS)
    for kind, block in row["blocks"].items():
        for field in ("cpu_ms", "block_cpu_ms", "block_wall_ms", "dry_cpu_ms", "dry_wall_ms"):
            assert is_number(block[field]) and block[field] > 0, (kind, field)
        assert block["cpu_ms"] <= block["block_cpu_ms"]
        assert isinstance(block["events"], dict) and is_number(block["changed_keys"])
    assert row["blocks"]["idle"]["txs"] == 0 and row["blocks"]["funding"]["txs"] == 0
    assert row["blocks"]["mark"]["txs"] == 3 and row["blocks"]["cascade"]["txs"] == 3
    cascade = row["blocks"]["cascade"]
    assert cascade["events"].get("LiquidationTriggered", 0) == 15, cascade["events"]
    assert cascade["events"].get("AdlStep", 0) > 0, "the small fund runs out: ADL must close positions"
    assert "liquidation" not in str(row["blocks"]["mark"]["events"]).lower()
    rank = cascade["adl_rank"]
    assert rank is None or (rank["calls"] >= 1 and rank["candidates"] >= 45)
    for field in (
        "db_bytes_per_account", "events_bytes_per_account", "db_written_bytes_per_account",
        "rss_bytes_per_account", "peak_anon_bytes_per_account",
    ):  # fmt: skip
        assert is_number(row[field]), field
    # The packed state database is smaller than what the blocks wrote (free pages, and events.dat beside it).
    assert 0 < row["db_bytes"] < row["db_written_bytes"] and row["events_bytes"] > 0


def test_verify_replay_and_tree_figures(report: dict[str, Any]) -> None:
    v = report["verify"]
    assert v["log"]["txs"] == v["recovery"]["txs"] > 0
    assert v["recovery"]["cpu_us_per_tx"] > 0
    for name in ("verify", "replay"):
        for field in ("cpu_s", "wall_s", "cpu_us_per_tx", "wall_over_cpu", "startup_cpu_s"):
            assert is_number(v[name][field]), (name, field)
    assert is_number(v["verify"]["cpu_over_recovery"])
    [tree] = report["tree"]
    assert tree["keys"] == 1000 and tree["cpu_us_per_key"] > 0 and tree["hash_cpu_us_per_key"] > 0


def test_every_target_is_reported(report: dict[str, Any]) -> None:
    bench = load_bench()
    assert set(report["targets"]) == set(bench.TARGETS)
    for name, target in report["targets"].items():
        assert target["target"] == bench.TARGETS[name]
        assert is_number(target["bound"])
        assert target["pass"] in (True, False, None)
        assert (target["value"] is None) == (target["pass"] is None), name
    # A tiny run has none of the sizes the size-bound targets name; the ratios of one run are present.
    assert report["targets"]["idle_ms"]["pass"] is None
    assert report["targets"]["verify_cpu_ratio"]["pass"] is not None
    assert report["targets"]["replay_wall_ratio"]["pass"] is not None


def test_the_terminal_table_renders(report: dict[str, Any]) -> None:
    from rich.console import Console

    bench = load_bench()
    buffer = io.StringIO()
    bench.print_tables(report, Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "cascade" in text and "Issue 10 targets" in text and "bare recovery" in text


def test_before_after_comparison(report: dict[str, Any]) -> None:
    bench = load_bench()
    slower = json.loads(json.dumps(report))
    slower["sizes"][0]["blocks"]["idle"]["cpu_ms"] *= 2
    table = bench.compare(report, slower)
    assert table["idle block CPU ms @ 60"]["ratio"] == pytest.approx(2.0)
    assert table["mark block CPU ms @ 60"]["ratio"] == pytest.approx(1.0)
    assert set(table) >= {"verify CPU / recovery", "tree CPU us/key @ 1,000", "target idle_ms"}
    assert table["target idle_ms"] == {"before": None, "after": None, "ratio": None}


def test_the_markdown_report(report: dict[str, Any]) -> None:
    bench = load_bench()
    text = bench.markdown({**report, "compare": bench.compare(report, report)})
    assert text.count("\n| 60 |") == 1, "one row for the one size"
    assert "| `clearinghouse verify` |" in text and "| 1,000 |" in text
    assert sum(1 for line in text.splitlines() if line.startswith("| target ") or " | - |" in line) >= 1
    assert len([line for line in text.splitlines() if any(t in line for t in bench.TARGETS.values())]) == len(
        bench.TARGETS
    )
