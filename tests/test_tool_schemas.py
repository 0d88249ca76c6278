"""Issue 11, schemas: ``clearinghouse schema NAME`` for every --json output and export, and real outputs validate."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from test_tool_safety import run_cli

ROOT = Path(__file__).resolve().parent.parent
CASCADE = ROOT / "fixtures" / "scenarios" / "cascade_hyperliquid.toml"
SEED = ROOT / "fixtures" / "scenarios" / "seed_example_1.toml"


def schema_of(name: str) -> dict:
    rc, out, err = run_cli(["schema", name])
    assert rc == 0, err
    s = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(s)
    return s


def check(name: str, obj: object) -> None:
    jsonschema.Draft202012Validator(schema_of(name)).validate(obj)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("schemas")
    rc, out, err = run_cli(["demo", "--out", base / "demo", "--json"])
    assert rc == 0, err
    log, db = base / "cascade.log", base / "cascade-db"
    assert run_cli(["scenario", "compile", CASCADE, "--log", log])[0] == 0
    assert run_cli(["replay", log, "--db", db, "--json"])[0] == 0
    return {
        "demo": base / "demo",
        "log": base / "demo" / "demo.log",
        "db": base / "demo" / "state",
        "cascade": log,
        "cascade_db": db,
        "tmp": base,
    }


def test_every_schema_is_valid_and_listed() -> None:
    from clearinghouse.tools.schemas import SCHEMAS

    rc, out, _err = run_cli(["schema"])
    assert rc == 0
    for name in SCHEMAS:
        assert name in out
        schema_of(name)
    rc, _out, err = run_cli(["schema", "export-fill"])
    assert rc == 1 and "did you mean export-fills" in err


def test_command_outputs_validate(chain: dict) -> None:
    outputs = {
        "demo": ["demo", "--out", chain["demo"], "--json"],
        "replay": ["replay", chain["cascade"], "--db", chain["cascade_db"], "--json"],
        "verify": ["verify", chain["log"], "--json"],
        "inspect": ["inspect", "--db", chain["db"], "mm-2", "--proof", "--json"],
        "diff": ["diff", chain["db"], chain["cascade_db"], "--json"],
        "audit": ["audit", "--db", chain["db"], "--deep", "--json"],
        "explain": ["explain", chain["cascade"], "--account", "frank", "--json"],
        "scenario-run": ["scenario", "run", SEED, "--json"],
        "scenario-compile": ["scenario", "compile", SEED, "--log", chain["tmp"] / "seed.log", "--json"],
        "snapshot": ["snapshot", "--db", chain["db"], "--out", chain["tmp"] / "s.chsnap", "--json"],
    }
    for name, args in outputs.items():
        rc, out, err = run_cli(args)
        assert rc in (0, 1), (name, err)
        check(name, json.loads(out))


def test_failures_validate(chain: dict, tmp_path: Path) -> None:
    for args in (
        ["verify", tmp_path / "missing.log", "--json"],
        ["inspect", "--db", chain["db"], "nobody-at-all", "--json"],
        ["audit", "--db", tmp_path, "--json"],
    ):
        rc, out, _err = run_cli(args)
        assert rc == 1
        check("error", json.loads(out))
    data = chain["log"].read_bytes()
    bad = tmp_path / "bad.log"
    bad.write_bytes(data[:-200] + bytes(b ^ 0xFF for b in data[-200:-150]) + data[-150:])
    rc, out, _err = run_cli(["verify", bad, "--json"])
    assert rc == 1
    obj = json.loads(out)
    check("error" if "error" in obj and isinstance(obj["error"], dict) else "verify", obj)
    rc, out, _err = run_cli(["verify", chain["log"], "--json", "--expect-height", "3"])
    assert rc == 1
    check("verify", json.loads(out))


@pytest.mark.parametrize("kind", ["fills", "funding", "ledger", "liquidations"])
@pytest.mark.parametrize("source", ["log", "cascade"])
def test_export_records_validate(chain: dict, kind: str, source: str) -> None:
    rc, out, err = run_cli(["export", kind, chain[source]])
    assert rc == 0, err
    validator = jsonschema.Draft202012Validator(schema_of(f"export-{kind}"))
    lines = out.splitlines()
    for line in lines:
        validator.validate(json.loads(line))


def test_export_state_validates(chain: dict) -> None:
    for user in ("erin", "mm-2", "dave", "insurance_fund"):
        rc, out, err = run_cli(["export", "state", chain["log"], "--user", user])
        assert rc == 0, err
        check("export-state", json.loads(out))
    rc, out, err = run_cli(["export", "state", chain["log"], "--user", "dave", "--height", "8"])
    check("export-state", json.loads(out))


def test_segment_outputs_validate(chain: dict) -> None:
    snaps, db = chain["tmp"] / "snaps", chain["tmp"] / "seg-db"
    rc, out, err = run_cli(
        ["replay", chain["log"], "--db", db, "--snapshot-every", "4", "--snapshots", snaps, "--json"]
    )
    assert rc == 0, err
    check("replay", json.loads(out))
    rc, out, err = run_cli(["verify", chain["log"], "--snapshots", snaps, "--workers", "1", "--json"])
    assert rc == 0, err
    check("verify-segments", json.loads(out))
