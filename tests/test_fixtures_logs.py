"""The published log vector ``fixtures/logs/collateral.log`` (for ports to other languages).

The log verifies; a replay reproduces every header field and receipt code listed
in ``collateral.expected.json``, on both backends; and the generator script
still produces the committed files byte for byte (if a consensus change is
intended, regenerate them with ``python fixtures/logs/make_collateral_log.py``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, codes_of

from clearinghouse.chain.engine import Engine, replay_log
from clearinghouse.tools.cli import main
from state import LmdbStore, MemoryStore
from tx.encoding import header_hash

FIXTURES = REPO_ROOT / "fixtures" / "logs"
LOG = FIXTURES / "collateral.log"
EXPECTED = FIXTURES / "collateral.expected.json"
REGENERATE = "python fixtures/logs/make_collateral_log.py"


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads(EXPECTED.read_text())


def test_cli_verifies_the_vector(capsys: pytest.CaptureFixture[str], expected: dict[str, Any]) -> None:
    assert main(["verify", str(LOG), "--json"]) == 0, f"the committed vector no longer verifies: {REGENERATE}?"
    report = json.loads(capsys.readouterr().out)
    assert report["height"] == expected["height"] and report["state_root"] == expected["final_state_root"]


@pytest.mark.parametrize("backend", ["memory", "lmdb"])
def test_replay_reproduces_every_expected_header_and_receipt(
    expected: dict[str, Any], backend: str, tmp_path: Path
) -> None:
    store = MemoryStore() if backend == "memory" else LmdbStore(tmp_path / "db")
    engine = Engine(store)
    blocks = []

    def record(entry: Any, executed: Any) -> None:
        h = entry.block.header
        blocks.append(
            {
                "height": h.height,
                "time_ms": h.time_ms,
                "parent_hash": h.parent_hash.hex(),
                "tx_root": executed.tx_root.hex(),
                "state_root": store.root.hex(),
                "events_root": executed.events_root.hex(),
                "header_hash": header_hash(h).hex(),
                "txs": len(executed.txs),
                "receipt_codes": codes_of(executed),
            }
        )

    replay_log(engine, str(LOG), on_block=record)
    chain = engine.chain()
    assert (chain.chain_id, chain.genesis_hash.hex()) == (expected["chain_id"], expected["genesis_hash"])
    assert blocks == expected["blocks"], f"the vector is stale or the transition changed: {REGENERATE}"
    assert (store.height, store.root.hex()) == (expected["height"], expected["final_state_root"])
    store.close()


def test_vector_covers_every_rejection_kind(expected: dict[str, Any]) -> None:
    codes = {c for b in expected["blocks"] for c in b["receipt_codes"]}
    assert codes >= {
        "OK",
        "DECODE",
        "NON_CANONICAL",
        "BAD_SIGNATURE",
        "HIGH_S",
        "BAD_NONCE",
        "UNAUTHORIZED",
        "RESERVED_ACCOUNT",
        "INSUFFICIENT_BALANCE",
        "INVALID_AMOUNT",
    }


def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_collateral_log", FIXTURES / "make_collateral_log.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    for path in module.build(tmp_path):
        assert path.read_bytes() == (FIXTURES / path.name).read_bytes(), f"{path.name} is stale: {REGENERATE}"
