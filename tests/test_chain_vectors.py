"""Whole-chain vectors (fixtures/logs/*.expected.json): the demo and every fixture scenario.

Each committed log verifies, replays to exactly the recorded headers, receipt codes
and event order on both backends, and the generator reproduces the files byte for
byte (an intended consensus change regenerates them: python fixtures/logs/make_vectors.py).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from clearinghouse.tools.cli import main
from state import LmdbStore

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "logs"
spec = importlib.util.spec_from_file_location("make_vectors", FIXTURES / "make_vectors.py")
make_vectors = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_vectors)


@pytest.mark.parametrize("name", make_vectors.CHAINS)
def test_vector_verifies_and_replays_exactly(name: str, tmp_path: Path, capsys) -> None:
    log = FIXTURES / f"{name}.log"
    expected = json.loads((FIXTURES / f"{name}.expected.json").read_text())
    assert main(["verify", str(log), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["height"], report["state_root"]) == (expected["height"], expected["final_state_root"])
    got = make_vectors.expected_of(log, expected["description"])
    assert got == expected, "stale vector or changed transition: python fixtures/logs/make_vectors.py"
    with LmdbStore(tmp_path / "db") as store:
        from clearinghouse.chain.engine import Engine, replay_log

        replay_log(Engine(store), str(log))
        assert store.root.hex() == expected["final_state_root"]


def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    built = make_vectors.build(tmp_path)
    for name, (log_bytes, expected_text) in built.items():
        assert (FIXTURES / f"{name}.log").read_bytes() == log_bytes, f"{name}.log is stale"
        assert (FIXTURES / f"{name}.expected.json").read_text() == expected_text, f"{name}.expected.json is stale"
