"""Issue 11, output for people and programs.

Tables never cut a number (narrow or piped output drops columns or wraps, --wide
keeps them); --top and --quiet; inspect shows what a trader needs (entry price,
unrealized PnL, liquidation price, margin used, withdrawable, ADL rank) and its
proof as JSON; names are accepted where addresses are, and an unknown name is an
error with close matches; every JSON has human-unit companions.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env
from test_tool_safety import run_cli

CAROL = "0xD7D34767581960aCA19a4A80aacaE080dbA839DA"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("output") / "demo"
    rc, _out, err = run_cli(["demo", "--out", out, "--json"])
    assert rc == 0, err
    return out


def cli_text(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """The real command, piped (not a terminal), at ``columns`` wide."""
    return subprocess.run(
        [sys.executable, "-m", "clearinghouse.tools.cli", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(COLUMNS=str(columns)),
        timeout=300,
    )


def test_piped_80_column_tables_never_cut_numbers_or_addresses(demo_dir: Path) -> None:
    rc, out, _err = run_cli(["replay", demo_dir / "demo.log", "--db", demo_dir / "state", "--json"])
    summary = json.loads(out)
    proc = cli_text("replay", str(demo_dir / "demo.log"), "--db", str(demo_dir / "state"), "--top", "0")
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    for row in summary["accounts"]:
        for field in ("cash", "value"):
            human = row[field + "_usdc"]
            whole, _, frac = human.lstrip("-").partition(".")
            grouped = f"{int(whole):,}" + (f".{frac}" if frac else "")
            assert grouped in proc.stdout, (grouped, proc.stdout)
    assert "left out address" in proc.stdout  # 80 columns: the address column was dropped, not cut
    wide = cli_text("replay", str(demo_dir / "demo.log"), "--db", str(demo_dir / "state"), "--top", "0", "--wide")
    assert "…" not in wide.stdout and all(r["address"] in wide.stdout for r in summary["accounts"] if r["name"])


def test_inspect_table_at_80_columns_keeps_numbers(demo_dir: Path) -> None:
    proc = cli_text("inspect", "--db", str(demo_dir / "state"), "mm-2")
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout and "88,760.71429" not in proc.stdout  # no grouping needed; never cut
    assert "88760.71429" in proc.stdout


def test_top_and_quiet(tmp_path: Path) -> None:
    from clearinghouse.chain.producer import Producer
    from clearinghouse.tools.demo import USDC, demo_genesis
    from tx.actions import Deposit

    log = tmp_path / "many.log"
    p = Producer(demo_genesis(), str(log), overwrite=True)
    bridge = p.wallet("bridge")
    p.block(
        [
            bridge.sign(Deposit(to=p.wallet(f"u{i}").address, amount=(i + 1) * USDC, ref=i + 1), p.time_ms + 1000)
            for i in range(120)
        ]
    )
    p.close()
    db = tmp_path / "db"
    proc = cli_text("replay", str(log), "--db", str(db), "--top", "5")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) < 30, proc.stdout
    assert "Accounts by value (5 of 122)" in proc.stdout and "and 117 more accounts" in proc.stdout
    assert "120" in proc.stdout  # the largest deposit comes first
    quiet = cli_text("replay", str(log), "--db", str(db), "--quiet")
    assert "Accounts" not in quiet.stdout and len(quiet.stdout.splitlines()) <= 8
    default = cli_text("replay", str(log), "--db", str(db))
    assert "Accounts by value (20 of 122)" in default.stdout
    rc, out, _err = run_cli(["replay", log, "--db", db, "--json", "--top", "3"])
    assert rc == 0 and len(json.loads(out)["accounts"]) == 3 and json.loads(out)["account_count"] == 122


def test_inspect_shows_what_a_trader_needs(demo_dir: Path) -> None:
    rc, out, err = run_cli(["inspect", "--db", demo_dir / "state", "erin", "--json"])
    assert rc == 0, err
    r = json.loads(out)
    assert r["name"] == "erin" and r["withdrawable_usdc"] and r["margin_used_usdc"] and r["account_value_usdc"]
    (pos,) = r["positions"]
    assert pos["coin"] == "BTC" and pos["size_base"] == "-1.6"
    assert pos["entry_price_usdc"] == "89990"
    assert pos["unrealized_pnl_usdc"] == "15984"  # -1.6 x (80,000 - 89,990)
    assert pos["liquidation_price_usdc"].startswith("115026.92")  # 185,883.509 / (1.6 x 1.01)
    assert pos["adl"]["rank"] >= 1
    proc = cli_text("inspect", "--db", str(demo_dir / "state"), "erin")
    for word in ("entry", "uPnL", "liq. price", "margin", "withdrawable", "ADL rank", "BTC"):
        assert word in proc.stdout, word


def test_inspect_proof_is_json(demo_dir: Path) -> None:
    proc = cli_text("inspect", "--db", str(demo_dir / "state"), "erin", "--proof")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout[proc.stdout.index("\n{") + 1 :]
    obj = json.loads(text)
    assert obj["account"]["kind"] == "inclusion" and obj["account"]["verified"] is True
    assert obj["positions"][0]["coin"] == "BTC" and obj["positions"][0]["verified"] is True
    assert "{'" not in proc.stdout  # no Python dict


def test_names_and_close_matches(demo_dir: Path, tmp_path: Path) -> None:
    rc, out, err = run_cli(["inspect", "--db", demo_dir / "state", "carol", "--json"])
    assert rc == 0, err
    assert json.loads(out)["address"] == CAROL
    rc, _out, err = run_cli(["inspect", "--db", demo_dir / "state", "carl"])
    assert rc == 1 and "did you mean carol" in err, err
    rc, _out, err = run_cli(["explain", demo_dir / "demo.log", "--account", "carl"])
    assert rc == 1 and "did you mean carol" in err, err
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"the-liquidated-one": CAROL}))
    rc, out, err = run_cli(["inspect", "--db", demo_dir / "state", "the-liquidated-one", "--names", names, "--json"])
    assert rc == 0 and json.loads(out)["name"] == "the-liquidated-one", err
    txt = tmp_path / "names.txt"
    txt.write_text(f"# name address\nvictim {CAROL}\n")
    rc, out, err = run_cli(["explain", demo_dir / "demo.log", "--account", "victim", "--names", txt, "--json"])
    assert rc == 0 and json.loads(out)["incidents"], err
    rc, _out, err = run_cli(["explain", demo_dir / "demo.log", "--account", "vctim", "--names", txt])
    assert rc == 1 and "did you mean victim" in err


def test_scenario_names_for_inspect(tmp_path: Path) -> None:
    scenario = Path(__file__).resolve().parent.parent / "fixtures" / "scenarios" / "cascade_hyperliquid.toml"
    log, db = tmp_path / "c.log", tmp_path / "db"
    assert run_cli(["scenario", "compile", scenario, "--log", log])[0] == 0
    assert run_cli(["replay", log, "--db", db, "--json"])[0] == 0
    rc, out, err = run_cli(["inspect", "--db", db, "frank", "--scenario", scenario, "--json"])
    assert rc == 0, err
    assert json.loads(out)["name"] == "frank"


def _numbers_without_companions(obj: object, path: str = "") -> list[str]:
    """Money fields (by name) whose dict has no ``_usdc`` companion."""
    money = re.compile(
        r"^(cash|value|cost|iso_cash|amount|withdrawable|margin_used|account_value|unrealized_pnl|position_value)$"
    )
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if money.match(k) and isinstance(v, int) and not isinstance(v, bool) and k + "_usdc" not in obj:
                out.append(f"{path}.{k}")
            out.extend(_numbers_without_companions(v, f"{path}.{k}"))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_numbers_without_companions(v, f"{path}[{i}]"))
    return out


def test_every_json_has_human_companions(demo_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert run_cli(["replay", demo_dir / "demo.log", "--db", other, "--json"])[0] == 0
    scenario = Path(__file__).resolve().parent.parent / "fixtures" / "scenarios" / "seed_example_1.toml"
    log = tmp_path / "s.log"
    assert run_cli(["scenario", "compile", scenario, "--log", log])[0] == 0
    sdb = tmp_path / "sdb"
    assert run_cli(["replay", log, "--db", sdb, "--json"])[0] == 0
    for args in (
        ["demo", "--out", demo_dir, "--json"],
        ["verify", demo_dir / "demo.log", "--json"],
        ["inspect", "--db", demo_dir / "state", "mm-2", "--json"],
        ["diff", demo_dir / "state", sdb, "--json"],
    ):
        rc, out, err = run_cli(args)
        assert rc in (0, 1), err
        obj = json.loads(out)
        assert _numbers_without_companions(obj) == [], args
    rc, out, _err = run_cli(["diff", demo_dir / "state", sdb, "--json"])
    diffs = json.loads(out)["differences"]
    assert any("cash_usdc" in (d["a"] or {}) for d in diffs if isinstance(d["a"], dict))


def test_diff_text_is_field_by_field(demo_dir: Path, tmp_path: Path) -> None:
    scenario = Path(__file__).resolve().parent.parent / "fixtures" / "scenarios" / "seed_example_1.toml"
    log, sdb = tmp_path / "s.log", tmp_path / "sdb"
    assert run_cli(["scenario", "compile", scenario, "--log", log])[0] == 0
    assert run_cli(["replay", log, "--db", sdb, "--json"])[0] == 0
    proc = cli_text("diff", str(demo_dir / "state"), str(sdb), "--limit", "5")
    assert proc.returncode == 1
    assert "cash: " in proc.stdout and "->" in proc.stdout and "{'" not in proc.stdout
    wide = cli_text("diff", str(demo_dir / "state"), str(sdb), "--limit", "200")
    assert "market_state/BTC" in wide.stdout and "market_state/0" not in wide.stdout
