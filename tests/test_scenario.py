"""Scenarios: the TOML format, its compiler to a signed log, the runner and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from clearinghouse.tools import units as U
from clearinghouse.tools.scenario.model import ScenarioError
from clearinghouse.tools.scenario.parse import load_scenario, parse_scenario
from clearinghouse.tools.scenario.run import run_scenario
from tx.signing import Signer, checksum_address


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m clearinghouse.tools.cli`` children: the checkout on PYTHONPATH, no debug tracebacks."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("CLEARINGHOUSE_DEBUG", None)
    env.update(extra)
    return env


FIXTURE = REPO / "fixtures" / "scenarios" / "trading_basic.toml"

HEAD = """
accounts = ["alice", "bob"]
[[market]]
name = "BTC"
sz_decimals = 3
max_leverage = 50
initial_price = "90000"
"""


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clearinghouse.tools.cli", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=cwd,
    )


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ---------------------------------------------------------------- units
def test_units_exact_both_ways() -> None:
    assert U.usdc_to_micro("1234.5") == 1_234_500_000
    assert U.usdc_to_micro(Decimal("0.000001")) == 1
    assert U.price_to_units("90000.5", 3) == 90_000_500
    assert U.price_to_units(3200, 2) == 32_000_000
    assert U.size_to_lots("0.30", 3) == 300
    assert U.size_to_lots("-2", 3) == -2000
    assert U.bps_to_ppm("4.5") == 450
    assert U.usdc_to_micro("123456789012345678901234567890.123456") == 123456789012345678901234567890123456
    assert U.micro_to_usdc(1_234_500_000) == "1234.5"
    assert U.micro_to_usdc(-1_234_500_000, grouping=True) == "-1,234.5"
    assert U.units_to_price(88_200_000, 3) == "88200"
    assert U.lots_to_size(300, 3) == "0.3"
    assert U.fraction_to_decimal(7, 3) == "2.3333333"
    for text in ["0", "1", "0.001", "90000.123", "-5.5"]:
        assert U.lots_to_size(U.size_to_lots(text, 3), 3) == str(Decimal(text).normalize()) if "." in text else text


@pytest.mark.parametrize("value", ["0.0005", "1e3", "NaN", " 1", "1,000", "", "abc", 1.5, True, None, "1__0"])
def test_units_reject_inexact_or_malformed(value) -> None:
    with pytest.raises(U.UnitError):
        U.size_to_lots(value, 3)


# ---------------------------------------------------------------- the fixture
@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("fixture") / "trading_basic.log"
    return run_scenario(load_scenario(str(FIXTURE)), str(log)), log


def test_fixture_runs_and_trades(fixture_run) -> None:
    run, log = fixture_run
    assert not run.failed_expects and len(run.expects) >= 5
    fills = [e for b in run.blocks for e in b.events if type(e).__name__ == "Fill"]
    assert len(fills) == 2
    carol = Signer.from_name("carol").address
    assert fills[0].taker == carol and fills[0].price == 90_010_000 and fills[0].size == 300
    rejected = [e for b in run.blocks for e in b.events if type(e).__name__ == "Receipt" and not e.ok]
    assert [r.code for r in rejected] == ["INSUFFICIENT_BALANCE"]
    assert log.exists()


def test_cli_run_text_shows_fills_and_accounts() -> None:
    r = cli("scenario", "run", str(FIXTURE))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "fill 0.3 BTC at 90,010: carol buys from alice" in out
    assert f"carol ({checksum_address(Signer.from_name('carol').address)})" in out
    assert "BTC long 0.2 BTC at entry 90,010" in out
    assert "Expectations:" in out and "FAIL" not in out


def test_cli_run_json(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    r = cli("scenario", "run", str(FIXTURE), "--json", "--log", str(log))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["scenario"] == "trading basic" and d["policy"] == "hyperliquid" and d["ok"] is True
    assert d["log"] == str(log) and log.exists()
    assert d["height"] == len(d["blocks"]) and len(d["state_root"]) == 64
    assert d["summary"]["fills"] == 2 and d["summary"]["liquidations"] == 0 and d["summary"]["rejected"] == 1
    fills = [e for b in d["blocks"] for e in b["events"] if e["type"] == "Fill"]
    assert fills[0]["price"] == 90_010_000 and fills[0]["price_usdc"] == "90010"
    assert fills[0]["size"] == 300 and fills[0]["size_base"] == "0.3"
    assert (
        fills[0]["taker"] == checksum_address(Signer.from_name("carol").address) and fills[0]["taker_name"] == "carol"
    )
    assert fills[0]["market_name"] == "BTC"
    carol = d["accounts"]["carol"]
    assert carol["positions"][0]["size_base"] == "0.2" and carol["positions"][0]["entry_price_usdc"] == "90010"
    assert "insurance_fund" in d["accounts"] and d["accounts"]["insurance_fund"]["cash_usdc"] == "50000"


def test_determinism_same_file_same_bytes_and_root(tmp_path: Path) -> None:
    sc = load_scenario(str(FIXTURE))
    a = run_scenario(sc, str(tmp_path / "a.log"))
    b = run_scenario(load_scenario(str(FIXTURE)), str(tmp_path / "b.log"))
    assert a.producer.engine.store.root == b.producer.engine.store.root
    assert (tmp_path / "a.log").read_bytes() == (tmp_path / "b.log").read_bytes()
    # ... and in another process with another hash seed.
    r1 = cli("scenario", "run", str(FIXTURE), "--json")
    r2 = subprocess.run(
        [sys.executable, "-m", "clearinghouse.tools.cli", "scenario", "run", str(FIXTURE), "--json"],
        capture_output=True,
        text=True,
        env=subprocess_env(PYTHONHASHSEED="12345"),
        cwd=REPO,
    )
    assert (
        json.loads(r1.stdout)["state_root"] == json.loads(r2.stdout)["state_root"] == a.producer.engine.store.root.hex()
    )


def test_compile_then_verify(tmp_path: Path) -> None:
    log = tmp_path / "compiled.log"
    r = cli("scenario", "compile", str(FIXTURE), "--log", str(log))
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    v = cli("verify", str(log), "--json")
    assert v.returncode == 0, v.stderr
    report = json.loads(v.stdout)
    assert report["ok"] is True
    run = json.loads(cli("scenario", "run", str(FIXTURE), "--json").stdout)
    assert report["state_root"] == run["state_root"]


# ---------------------------------------------------------------- blocks and time
def test_block_grouping_and_advance(tmp_path: Path) -> None:
    text = (
        HEAD
        + """
[chain]
start = "2026-03-01T12:00:00Z"
block_seconds = 2
[[step]]
do = "deposit"
account = "alice"
amount = "100"
[[step]]
do = "deposit"
account = "bob"
amount = "100"
[[step]]
do = "advance"
seconds = 30
[[step]]
do = "advance"
seconds = "0.5"
[[step]]
do = "block"
[[step]]
do = "transfer"
account = "alice"
to = "bob"
amount = "1.25"
[[step]]
do = "expect"
account = "bob"
cash = "101.25"
[[step]]
do = "transfer"
account = "bob"
to = "alice"
amount = "0.25"
"""
    )
    run = run_scenario(parse_scenario(text), str(tmp_path / "x.log"))
    start = 1_772_366_400_000
    assert [(b.height, b.time_ms, len(b.events)) for b in run.blocks][:2] == [
        (1, start + 2000, 4),
        (2, start + 2000 + 30_500, 0),
    ]
    assert (
        run.blocks[2].time_ms == run.blocks[1].time_ms + 2000 and run.blocks[3].time_ms == run.blocks[2].time_ms + 2000
    )
    assert len(run.blocks) == 4 and not run.failed_expects


def test_oracle_step_signs_per_publisher(tmp_path: Path) -> None:
    text = (
        HEAD
        + """
[[step]]
do = "oracle"
prices = { BTC = ["91000", "90000", "89000"] }
external = { BTC = "90100" }
[[step]]
do = "expect"
oracle = { BTC = "90000" }
event = "Receipt"
where = { action = "OracleUpdate", ok = true }
count = 3
[[step]]
do = "oracle"
publishers = ["oracle-2"]
prices = { BTC = "88000.5" }
[[step]]
do = "expect"
oracle = { BTC = "89000" }
[[step]]
do = "oracle"
publishers = ["oracle-2", "oracle-3"]
prices = { BTC = "88000.5" }
[[step]]
do = "expect"
oracle = { BTC = "88000.5" }
"""
    )
    # oracle-2 alone is a minority: the median of the latest fresh words (91000, 88000.5, 89000) is 89000
    # (protocol §11.2); with oracle-3 it is a majority: median(91000, 88000.5, 88000.5) = 88000.5.
    run = run_scenario(parse_scenario(text), str(tmp_path / "o.log"))
    assert not run.failed_expects, [e.message for e in run.failed_expects]
    receipts = [e for e in run.blocks[0].events if type(e).__name__ == "Receipt"]
    assert {r.signer for r in receipts} == {Signer.from_name(n).address for n in ("oracle-1", "oracle-2", "oracle-3")}


def test_accounts_table_deposits_first_block(tmp_path: Path) -> None:
    text = """
[accounts]
alice = "1000"
bob = "0"
[[market]]
name = "ETH"
sz_decimals = 2
max_leverage = 25
initial_price = "3200"
[[step]]
do = "expect"
account = "alice"
cash = "1000"
value = "1000"
[[step]]
do = "expect"
account = "bob"
cash = "0"
"""
    run = run_scenario(parse_scenario(text), str(tmp_path / "a.log"))
    assert len(run.blocks) == 1 and not run.failed_expects


def test_every_step_kind_compiles_and_runs(tmp_path: Path) -> None:
    text = """
[accounts]
alice = "100000"
bob = "100000"
[[market]]
name = "BTC"
sz_decimals = 3
max_leverage = 50
initial_price = "90000"
[[step]]
do = "leverage"
account = "alice"
market = "BTC"
leverage = 5
mode = "isolated"
[[step]]
do = "order"
account = "bob"
market = "BTC"
side = "sell"
price = "90000"
size = "0.5"
tif = "ALO"
[[step]]
do = "market_order"
account = "alice"
market = "BTC"
side = "buy"
size = "0.2"
[[step]]
do = "block"
note = "the isolated position exists from here on (non-order actions run first in a block)"
[[step]]
do = "isolated_margin"
account = "alice"
market = "BTC"
amount = "200"
[[step]]
do = "trigger"
account = "alice"
market = "BTC"
side = "sell"
size = "0.2"
trigger_price = "80000"
kind = "sl"
cloid = 7
[[step]]
do = "block"
[[step]]
do = "expect"
account = "alice"
market = "BTC"
position = "0.2"
entry_price = "90000"
open_orders = 1
[[step]]
do = "cancel"
account = "alice"
market = "BTC"
cloid = 7
[[step]]
do = "modify"
account = "bob"
market = "BTC"
oid = 1
price = "90100"
size = "0.1"
[[step]]
do = "withdraw"
account = "bob"
amount = "10"
[[step]]
do = "isolated_margin"
account = "alice"
market = "BTC"
amount = "-50"
[[step]]
do = "expect"
account = "alice"
open_orders = 0
[[step]]
do = "expect"
event = "Receipt"
where = { ok = false }
count = 0
within = "scenario"
"""
    run = run_scenario(parse_scenario(text), str(tmp_path / "k.log"))
    rejected = [
        (e.action, e.code, e.message)
        for b in run.blocks
        for e in b.events
        if type(e).__name__ == "Receipt" and not e.ok
    ]
    assert not run.failed_expects, ([e.message for e in run.failed_expects], rejected)


# ---------------------------------------------------------------- expectations
def test_wrong_expect_fails_with_exit_1(tmp_path: Path) -> None:
    text = (
        HEAD
        + """
[[step]]
do = "deposit"
account = "alice"
amount = "100"
[[step]]
do = "expect"
account = "alice"
cash = "99"
note = "deliberately wrong"
[[step]]
do = "expect"
account = "alice"
cash = "100"
"""
    )
    p = write(tmp_path, text)
    run = run_scenario(load_scenario(str(p)), str(tmp_path / "w.log"))
    assert [e.ok for e in run.expects] == [False, True]
    assert run.failed_expects[0].message == "alice cash is 100 USDC, expected 99"
    r = cli("scenario", "run", str(p))
    assert r.returncode == 1
    assert r.stderr.strip() == "error: expectation failed at step 2 (height 1): alice cash is 100 USDC, expected 99"
    assert "FAIL" in r.stdout  # the report is still printed
    r = cli("scenario", "run", str(p), "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False
    r = cli("scenario", "compile", str(p), "--log", str(tmp_path / "c.log"))
    assert r.returncode == 1 and "expectation failed" in r.stderr


def test_event_expect_with_human_fields(tmp_path: Path) -> None:
    text = (
        HEAD
        + """
[[step]]
do = "deposit"
account = "alice"
amount = "5000"
[[step]]
do = "deposit"
account = "bob"
amount = "5000"
[[step]]
do = "block"
[[step]]
do = "order"
account = "alice"
market = "BTC"
side = "sell"
price = "90000"
size = "0.01"
[[step]]
do = "order"
account = "bob"
market = "BTC"
side = "buy"
price = "90000"
size = "0.01"
[[step]]
do = "expect"
event = "Fill"
where = { market = "BTC", taker = "bob", maker = "alice", price = 90000, size = "0.01", taker_fee = "0.405", liquidation = false }
[[step]]
do = "expect"
event = "Fill"
where = { size = "0.02" }
count = 0
"""
    )
    run = run_scenario(parse_scenario(text), str(tmp_path / "e.log"))
    assert not run.failed_expects, [e.message for e in run.failed_expects]


# ---------------------------------------------------------------- errors
ERRORS = [
    ("bad toml", "accounts = [", "invalid TOML"),
    ("unknown top key", HEAD + "colour = 1\n", "unknown key 'colour'"),
    (
        "unknown step key",
        HEAD + '[[step]]\ndo = "deposit"\naccount = "alice"\namount = "1"\namout = "2"\n',
        "step 1 (deposit): unknown key 'amout'",
    ),
    ("unknown do", HEAD + '[[step]]\ndo = "teleport"\n', "step 1: unknown do = 'teleport'"),
    ("missing do", HEAD + '[[step]]\naccount = "alice"\n', "step 1: missing 'do'"),
    (
        "missing key",
        HEAD + '[[step]]\ndo = "deposit"\naccount = "alice"\n',
        "step 1 (deposit): missing required key 'amount'",
    ),
    (
        "unknown market",
        HEAD + '[[step]]\ndo = "order"\naccount = "alice"\nmarket = "DOGE"\nside = "buy"\nprice = "1"\nsize = "1"\n',
        "unknown market 'DOGE'",
    ),
    (
        "unknown account",
        HEAD + '[[step]]\ndo = "deposit"\naccount = "mallory"\namount = "1"\n',
        "unknown account 'mallory'",
    ),
    (
        "inexact size",
        HEAD
        + '[[step]]\ndo = "order"\naccount = "alice"\nmarket = "BTC"\nside = "buy"\nprice = "90000"\nsize = "0.0001"\n',
        "size '0.0001' is not a whole multiple of 0.001 BTC",
    ),
    (
        "inexact price",
        HEAD
        + '[[step]]\ndo = "order"\naccount = "alice"\nmarket = "BTC"\nside = "buy"\nprice = "9.0001"\nsize = "1"\n',
        "price '9.0001' is not a whole multiple of 0.001 USDC",
    ),
    (
        "inexact usdc",
        HEAD + '[[step]]\ndo = "deposit"\naccount = "alice"\namount = "0.0000001"\n',
        "amount '0.0000001' is not a whole multiple of 0.000001 USDC",
    ),
    ("nan", HEAD + '[[step]]\ndo = "deposit"\naccount = "alice"\namount = nan\n', "amount must be a finite number"),
    (
        "unquoted inexact",
        HEAD + '[[step]]\ndo = "deposit"\naccount = "alice"\namount = 0.0000001\n',
        "not a whole multiple of 0.000001 USDC",
    ),
    (
        "bad side",
        HEAD + '[[step]]\ndo = "order"\naccount = "alice"\nmarket = "BTC"\nside = "long"\nprice = "1"\nsize = "1"\n',
        "side must be one of 'buy', 'sell'",
    ),
    (
        "bad tif",
        HEAD
        + '[[step]]\ndo = "order"\naccount = "alice"\nmarket = "BTC"\nside = "buy"\nprice = "1"\nsize = "1"\ntif = "GTD"\n',
        "tif must be one of",
    ),
    ("bad policy", HEAD + '[chain]\npolicy = "yolo"\n', "policy must be one of"),
    ("bad start", HEAD + '[chain]\nstart = "yesterday"\n', "start 'yesterday' is not an ISO-8601 time"),
    (
        "top key in table",
        '[chain]\npolicy = "seed"\naccounts = ["a"]\n',
        "a top-level 'accounts' must come before the first [table]",
    ),
    ("no market", 'accounts = ["a"]\n', "at least one [[market]]"),
    (
        "dup market",
        HEAD + '[[market]]\nname = "BTC"\nsz_decimals = 3\nmax_leverage = 5\ninitial_price = "1"\n',
        "duplicate market name",
    ),
    (
        "market key",
        HEAD.replace('initial_price = "90000"', 'initial_price = "90000"\ntick = 1'),
        "[[market]] 'BTC': unknown key 'tick'",
    ),
    ("reserved account", 'accounts = ["insurance_fund"]\n' + HEAD.split("\n", 2)[2], "reserved"),
    (
        "oracle list length",
        HEAD + '[[step]]\ndo = "oracle"\nprices = { BTC = ["1", "2"] }\n',
        "lists 2 prices for 3 publishers",
    ),
    ("expect nothing", HEAD + '[[step]]\ndo = "expect"\n', "nothing to check"),
    ("expect bad event", HEAD + '[[step]]\ndo = "expect"\nevent = "Fil"\n', "unknown event type 'Fil'"),
    (
        "expect bad field",
        HEAD + '[[step]]\ndo = "expect"\nevent = "Fill"\nwhere = { prize = "1" }\n',
        "event Fill has no field 'prize'",
    ),
    (
        "position without market",
        HEAD + '[[step]]\ndo = "expect"\naccount = "alice"\nposition = "1"\n',
        "position needs market",
    ),
    (
        "cancel both",
        HEAD + '[[step]]\ndo = "cancel"\naccount = "alice"\nmarket = "BTC"\noid = 1\ncloid = 2\n',
        "exactly one of oid or cloid",
    ),
    (
        "bool as int",
        HEAD + '[[step]]\ndo = "leverage"\naccount = "alice"\nmarket = "BTC"\nleverage = true\n',
        "leverage must be an integer",
    ),
]


@pytest.mark.parametrize("label, text, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_are_one_clean_line(tmp_path: Path, label: str, text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.toml")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_errors_have_no_traceback(tmp_path: Path) -> None:
    p = write(tmp_path, ERRORS[2][1])
    r = cli("scenario", "run", str(p))
    assert r.returncode == 1
    assert (
        r.stderr.strip()
        == f"error: {p}: step 1 (deposit): unknown key 'amout' (allowed: do, note, account, amount, ref)"
    )
    r = cli("scenario", "run", str(tmp_path / "missing.toml"))
    assert r.returncode == 1 and r.stderr.startswith("error: no such scenario file")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00")
    r = cli("scenario", "run", str(tmp_path / "bin.toml"))
    assert r.returncode == 1 and "not UTF-8" in r.stderr
    r = cli("scenario", "compile", str(FIXTURE), "--log", str(tmp_path / "no" / "such" / "dir.log"))
    assert r.returncode == 1 and "no such directory" in r.stderr
    r = cli("scenario", "compile", str(FIXTURE))
    assert r.returncode == 2  # argparse: --log is required
    for res in (r,):
        assert "Traceback" not in res.stderr


def test_docs_examples_run(tmp_path: Path) -> None:
    """Every complete scenario in docs/scenarios.md (a ```toml block with a [[market]]) compiles and runs."""
    import re

    doc = (REPO / "docs" / "scenarios.md").read_text()
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", doc, re.S) if "[[market]]" in b]
    assert len(blocks) >= 2
    for i, text in enumerate(blocks):
        run = run_scenario(parse_scenario(text, f"doc{i}.toml"), str(tmp_path / f"doc{i}.log"))
        assert not run.failed_expects, [e.message for e in run.failed_expects]
