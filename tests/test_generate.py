"""``clearinghouse generate``: deterministic bytes for any worker count, logs that verify, the crash
profile's waterfall, the committed cascade fixture, and typed CLI errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT

from clearinghouse.chain.engine import Engine, replay_log
from clearinghouse.tools.cli import main
from clearinghouse.tools.generate import GenerateSpec, block_waterfall_counts, crash_min_blocks, generate
from state import MemoryStore

FIXTURES = REPO_ROOT / "fixtures" / "logs"
CASCADE_LOG = FIXTURES / "cascade_generated.log"
CASCADE_EXPECTED = FIXTURES / "cascade_generated.expected.json"
REGENERATE = "python fixtures/logs/make_cascade_generated.py"


def _make_script() -> Any:
    spec = importlib.util.spec_from_file_location("make_cascade_generated", FIXTURES / "make_cascade_generated.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def small_crash() -> GenerateSpec:
    base = GenerateSpec(accounts=60, blocks=1, txs_per_block=60, seed=11, profile="crash", markets=2)
    return GenerateSpec(
        accounts=60, blocks=crash_min_blocks(base) + 2, txs_per_block=60, seed=11, profile="crash", markets=2
    )


@pytest.mark.parametrize(
    "spec",
    [
        GenerateSpec(accounts=40, blocks=14, txs_per_block=30, seed=5, profile="normal", markets=2),
        small_crash(),
    ],
    ids=["normal", "crash"],
)
def test_same_bytes_whatever_the_worker_count(spec: GenerateSpec, tmp_path: Path) -> None:
    one, two = tmp_path / "w1.log", tmp_path / "w2.log"
    r1 = generate(one, spec, workers=1)
    r2 = generate(two, spec, workers=2)
    assert one.read_bytes() == two.read_bytes()
    assert r1.state_root == r2.state_root and r1.txs == r2.txs > 0
    other = tmp_path / "seed.log"
    generate(other, GenerateSpec(**{**spec.__dict__, "seed": spec.seed + 1}), workers=1)
    assert other.read_bytes() != one.read_bytes()  # the seed matters


def test_generated_logs_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "n.log"
    assert (
        main(
            [
                "generate",
                "--out",
                str(log),
                "--accounts",
                "30",
                "--blocks",
                "12",
                "--txs-per-block",
                "25",
                "--seed",
                "3",
                "--workers",
                "2",
                "--json",
            ]
        )
        == 0
    )
    made = json.loads(capsys.readouterr().out)
    assert made["blocks"] == 12 and made["txs"] == 12 * (25 + 3)
    jsonschema = pytest.importorskip("jsonschema")
    from clearinghouse.tools.schemas import schema

    jsonschema.Draft202012Validator(schema("generate")).validate(made)
    assert main(["verify", str(log), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["state_root"] == made["state_root"] and report["height"] == 12


def test_normal_profile_mixes_actions_and_crosses_funding_hours(tmp_path: Path) -> None:
    log = tmp_path / "n.log"
    actions: dict[str, int] = {}
    funding = 0
    times = []

    def seen(ex: Any) -> None:
        nonlocal funding
        times.append(ex.time_ms)
        for e in ex.events:
            if type(e).__name__ == "Receipt" and e.ok:
                actions[e.action] = actions.get(e.action, 0) + 1
            funding += type(e).__name__ == "FundingPaid"

    generate(log, GenerateSpec(accounts=40, blocks=60, txs_per_block=30, seed=2), workers=1, on_block=seen)
    for name in (
        "Deposit",
        "Transfer",
        "Withdraw",
        "PlaceOrder",
        "MarketOrder",
        "Cancel",
        "Modify",
        "UpdateLeverage",
        "TriggerOrder",
        "OracleUpdate",
    ):
        assert actions.get(name, 0) > 0, (name, actions)
    assert (times[-1] - times[0]) // 3_600_000 >= 1 and funding > 0


def test_crash_profile_runs_the_waterfall_in_waves(tmp_path: Path) -> None:
    from clearinghouse.tools.adl_metrics import BlockObs, group_waves

    per: list[tuple[int, int, dict[str, int]]] = []
    generate(
        tmp_path / "c.log",
        small_crash(),
        workers=1,
        on_block=lambda ex: per.append((ex.height, ex.time_ms, block_waterfall_counts(ex.events))),
    )
    total = {k: sum(c[k] for _h, _t, c in per) for k in per[0][2]}
    assert total["liquidations"] > 0 and total["backstops"] > 0 and total["adl_fills"] > 0, total
    waves = group_waves([BlockObs(h, t, charges=[(b"", 1)] * c["adl_fills"]) for h, t, c in per], 5_000)
    assert len(waves) >= 2


def test_cascade_fixture_matches_its_expected_figures() -> None:
    expected = json.loads(CASCADE_EXPECTED.read_text())
    per: list[tuple[int, int, dict[str, int]]] = []
    engine = Engine(MemoryStore())
    replay_log(
        engine,
        str(CASCADE_LOG),
        on_block=lambda entry, ex: per.append((ex.height, ex.time_ms, block_waterfall_counts(ex.events))),
    )
    hint = f"the generated cascade fixture is stale (consensus rules changed?): regenerate it with `{REGENERATE}` and commit both files"
    assert (engine.height, engine.store.root.hex()) == (expected["height"], expected["final_state_root"]), hint
    got = _make_script().expected_from_blocks(per)
    assert (
        got["blocks"] == expected["blocks"]
        and got["totals"] == expected["totals"]
        and got["adl_waves"] == expected["adl_waves"]
    ), hint
    assert expected["options"]["accounts"] >= 2_000 and len(expected["adl_waves"]) >= 3
    assert CASCADE_LOG.stat().st_size < 6_000_000


@pytest.mark.soak
def test_cascade_fixture_regenerates_byte_for_byte(tmp_path: Path) -> None:
    script = _make_script()
    out = tmp_path / "cascade.log"
    generate(out, GenerateSpec(**script.OPTIONS), workers=2)
    assert out.read_bytes() == CASCADE_LOG.read_bytes(), f"regenerate with `{REGENERATE}`"


@pytest.mark.parametrize(
    "argv, code",
    [
        (["--accounts", "1", "--blocks", "5", "--txs-per-block", "3", "--seed", "1"], "BAD_GENERATE_OPTIONS"),
        (
            ["--accounts", "30", "--blocks", "3", "--txs-per-block", "10", "--seed", "1", "--profile", "crash"],
            "BAD_GENERATE_OPTIONS",
        ),
        (["--accounts", "30", "--blocks", "3", "--txs-per-block", "4000", "--seed", "1"], "BAD_GENERATE_OPTIONS"),
        (
            ["--accounts", "30", "--blocks", "3", "--txs-per-block", "10", "--seed", "1", "--workers", "0"],
            "BAD_GENERATE_OPTIONS",
        ),
    ],
)
def test_bad_options_are_typed_errors(
    argv: list[str], code: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "--out", str(tmp_path / "x.log"), *argv, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == code
    assert not (tmp_path / "x.log").exists()


def test_out_in_a_missing_folder_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "generate",
                "--out",
                str(tmp_path / "nope" / "x.log"),
                "--accounts",
                "5",
                "--blocks",
                "2",
                "--txs-per-block",
                "2",
                "--seed",
                "1",
            ]
        )
        == 1
    )
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--out", str(tmp_path / "x.log"), "--accounts", "5"])
    assert exc.value.code == 2


def test_an_interrupted_run_leaves_no_half_log(tmp_path: Path) -> None:
    out = tmp_path / "x.log"
    out.write_bytes(b"an older log")
    seen = []

    def stop(ex: Any) -> None:
        seen.append(ex.height)
        if ex.height == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(out, GenerateSpec(accounts=20, blocks=10, txs_per_block=10, seed=1), workers=2, on_block=stop)
    assert seen == [1, 2, 3] and out.read_bytes() == b"an older log"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.log"]


def test_genesis_policy_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "seed.log"
    assert (
        main(
            [
                "generate",
                "--out",
                str(log),
                "--accounts",
                "10",
                "--blocks",
                "3",
                "--txs-per-block",
                "5",
                "--seed",
                "1",
                "--policy",
                "seed",
            ]
        )
        == 0
    )
    capsys.readouterr()
    from clearinghouse.tools.whatif import read_genesis

    assert read_genesis(str(log)).policy == "seed"
    assert main(["verify", str(log)]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "generate",
                "--out",
                str(log),
                "--accounts",
                "10",
                "--blocks",
                "3",
                "--txs-per-block",
                "5",
                "--seed",
                "1",
                "--policy",
                "nope",
                "--json",
            ]
        )
        == 1
    )
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "BAD_GENERATE_OPTIONS"
