"""``clearinghouse explain``: plain-language and JSON explanations of liquidations and ADL.

The waterfall engine that emits the evidence events may not exist yet, so most
tests build the events by hand (the article's worked example 1, protocol §12.9)
on a legend read from a real chain; an end-to-end test runs a crash scenario
and is skipped until the engine emits liquidation events.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from clearinghouse.spec.constants import CROSS
from clearinghouse.spec.events import Fill, PositionTransfer, Receipt
from clearinghouse.spec.state.keys import INSURANCE_FUND
from clearinghouse.spec.waterfall.events import (
    AdlQueue,
    AdlShortfall,
    AdlStep,
    Backstop,
    DeficitCover,
    InsuranceCover,
    LiquidationTriggered,
    MarketLiquidation,
    PositionSnapshot,
    QueueEntry,
)
from clearinghouse.tools import explain as X
from clearinghouse.tools.scenario.parse import parse_scenario
from clearinghouse.tools.scenario.run import run_scenario
from tx.signing import Signer, checksum_address


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m clearinghouse.tools.cli`` children: the checkout on PYTHONPATH, no debug tracebacks."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("CLEARINGHOUSE_DEBUG", None)
    env.update(extra)
    return env


ALICE = Signer.from_name("alice").address
BOB = Signer.from_name("bob").address
CAROL = Signer.from_name("carol").address
DAVE = Signer.from_name("dave").address
USDC = 1_000_000

SMALL = """
accounts = ["alice", "bob", "carol", "dave"]
[chain]
policy = "seed"
[[market]]
name = "BTC"
sz_decimals = 3
max_leverage = 50
initial_price = "90000"
[[market]]
name = "ETH"
sz_decimals = 2
max_leverage = 25
initial_price = "3200"
[[step]]
do = "block"
"""


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory):
    """A tiny real chain (genesis + one block) whose state gives the legend; its log for the CLI."""
    log = tmp_path_factory.mktemp("explain") / "small.log"
    run = run_scenario(parse_scenario(SMALL, "small.toml"), str(log))
    return run, log


@pytest.fixture
def legend(chain) -> X.Legend:
    run, _ = chain
    return X.Legend.from_view(run.view(), run.scenario.names())


# Article example 1 in BTC units (sz_decimals 3): price units of 0.001 USDC, lots of 0.001 BTC.
def P(usdc: int | str) -> int:
    from decimal import Decimal

    return int(Decimal(str(usdc)) * 1000)


def example1_events() -> list:
    """Alice: long 1.00 BTC at 90,000, 50x, liquidated at mark 88,500; the fill at 87,600 leaves 600 USDC
    deficit; the empty fund pays nothing; bob (short 2.00 at 90,500, rank 1) covers it with 0.30 at 88,200."""
    snap = PositionSnapshot(market=0, size=1000, cost=90_000 * USDC, mark=P(88_500))
    top = [
        QueueEntry(account=BOB, unit=CROSS, size=-2000, index_num="46", index_den="1"),
        QueueEntry(account=CAROL, unit=CROSS, size=-500, index_num="7", index_den="3"),
    ]
    return [
        LiquidationTriggered(
            account=ALICE,
            market=CROSS,
            value=300 * USDC,
            maintenance_margin=885 * USDC,
            positions=[snap],
            method="market",
        ),
        MarketLiquidation(
            account=ALICE,
            market=0,
            unit=CROSS,
            side_is_buy=False,
            ordered=1000,
            filled=1000,
            limit_price=P(79_650),
            partial=False,
            cooldown_until_ms=0,
        ),
        Fill(
            tx_index=2**32 - 1,
            market=0,
            price=P(87_600),
            size=1000,
            taker=ALICE,
            maker=DAVE,
            taker_oid=9,
            maker_oid=4,
            taker_is_buy=False,
            taker_fee=0,
            maker_fee=0,
            taker_realized_pnl=-2_400 * USDC,
            maker_realized_pnl=0,
            liquidation=True,
        ),
        InsuranceCover(account=ALICE, unit=CROSS, deficit=600 * USDC, paid=0, fund_before=0, fund_after=0),
        AdlQueue(
            market=0,
            underwater=ALICE,
            underwater_unit=CROSS,
            underwater_size=1000,
            bankruptcy_price=P(88_200),
            policy="seed",
            queue_length=2,
            ranking_hash=bytes(range(32)),
            top=top,
        ),
        DeficitCover(
            market=0,
            underwater=ALICE,
            counterparty=BOB,
            rank=1,
            index_num="46",
            index_den="1",
            size=300,
            reference_price=P(88_200),
            realized_pnl=690 * USDC,
            covered=600 * USDC,
            deficit_remaining=0,
        ),
    ]


def adl_events() -> list:
    """A hyperliquid-style ADL: carol (rank 2 of 3) closes 0.5 BTC at alice's bankruptcy price."""
    above = [QueueEntry(account=BOB, unit=CROSS, size=-2000, index_num="46", index_den="1")]
    below = [QueueEntry(account=DAVE, unit=0, size=-100, index_num="1", index_den="3")]
    return [
        AdlQueue(
            market=0,
            underwater=ALICE,
            underwater_unit=CROSS,
            underwater_size=2500,
            bankruptcy_price=P(88_200),
            policy="hyperliquid",
            queue_length=3,
            ranking_hash=b"\xab" * 32,
            top=above + [QueueEntry(account=CAROL, unit=CROSS, size=-500, index_num="7", index_den="3")] + below,
        ),
        AdlStep(
            market=0,
            underwater=ALICE,
            counterparty=BOB,
            counterparty_unit=CROSS,
            rank=1,
            index_num="46",
            index_den="1",
            size=2000,
            price=P(88_200),
            realized_pnl=4_600 * USDC,
            remaining_after=500,
            neighbour_above=[],
            neighbour_below=[QueueEntry(account=CAROL, unit=CROSS, size=-500, index_num="7", index_den="3")],
        ),
        AdlStep(
            market=0,
            underwater=ALICE,
            counterparty=CAROL,
            counterparty_unit=CROSS,
            rank=2,
            index_num="7",
            index_den="3",
            size=500,
            price=P(88_200),
            realized_pnl=150 * USDC,
            remaining_after=0,
            neighbour_above=above,
            neighbour_below=below,
        ),
        PositionTransfer(
            market=0,
            reason="adl",
            closing=ALICE,
            counterparty=CAROL,
            closing_is_buy=False,
            size=500,
            price=P(88_200),
            closing_realized_pnl=0,
            counterparty_realized_pnl=150 * USDC,
        ),
    ]


# ---------------------------------------------------------------- the liquidated account
def test_liquidated_account_explained_in_plain_language(legend: X.Legend) -> None:
    blocks = [X.BlockEvents(height=7, time_ms=1_767_225_607_000, events=example1_events())]
    report = X.explain_events(blocks, ALICE, legend)
    assert not report["nothing_happened"]
    assert report["name"] == "alice" and report["account"] == checksum_address(ALICE)
    [inc] = [i for i in report["incidents"] if i["role"] == "liquidated"]
    text = "\n".join(inc["text"])
    # Why: value vs maintenance margin at the mark, with the numbers.
    assert "alice's cross account was liquidated" in text
    assert "value was 300 USDC, below its maintenance margin of 885 USDC (short by 585 USDC)" in text
    assert "BTC long 1 at entry 90,000, mark 88,500" in text
    assert "unrealized PnL -1,500 USDC" in text
    # What went into the book and at what price.
    assert "reduce-only sell of 1 BTC with limit 79,650 USDC; 1 filled" in text
    assert "sold 1 BTC at 87,600 USDC to dave in the book [liquidation order]" in text
    # What the fund paid, before and after; not backstopped.
    assert "deficit of 600 USDC; the fund paid 0 USDC (fund 0 -> 0 USDC); 600 USDC remained uncovered" in text
    assert "It was not backstopped." in text
    # The seed deficit cover and the queue.
    assert "bob (rank 1) closed 0.3 BTC at the reference price 88,200 USDC, covering 600 USDC; 0 USDC left" in text
    assert "bankruptcy price 88,200 USDC against a queue of 2 (seed ranking" in text
    assert inc["triggers"][0]["shortfall"] == 585 * USDC
    assert inc["triggers"][0]["value_usdc"] == "300"
    assert inc["fills"][0]["price"] == P(87_600) and inc["fills"][0]["price_usdc"] == "87600"
    assert inc["insurance"][0]["fund_before"] == 0
    assert inc["deficit_covers"][0]["counterparty_name"] == "bob"


def test_counterparty_of_deficit_cover(legend: X.Legend) -> None:
    blocks = [X.BlockEvents(height=7, time_ms=None, events=example1_events())]
    report = X.explain_events(blocks, BOB, legend)
    [inc] = report["incidents"]
    assert inc["role"] == "deficit_cover_counterparty"
    assert inc["rank"] == 1 and inc["queue_length"] == 2
    assert inc["size_base"] == "0.3" and inc["reference_price_usdc"] == "88200"
    assert inc["realized_pnl_usdc"] == "690" and inc["covered_usdc"] == "600"
    assert inc["queue_hash"] == bytes(range(32)).hex()
    text = "\n".join(inc["text"])
    assert "bob covered 600 USDC of alice's deficit in BTC (seed policy)" in text
    assert "rank 1 of 2; its index 46/1 ≈ 46" in text
    assert "realized +690 USDC, covering 600 USDC" in text


def test_adl_counterparty_rank_index_neighbours(legend: X.Legend) -> None:
    blocks = [X.BlockEvents(height=9, time_ms=1_767_225_609_500, events=adl_events())]
    report = X.explain_events(blocks, CAROL, legend)
    [inc] = report["incidents"]
    assert inc["role"] == "adl_counterparty"
    assert (inc["rank"], inc["queue_length"]) == (2, 3)
    assert inc["index"] == {"num": "7", "den": "3", "decimal": "2.3333333"}
    assert inc["queue_hash"] == "ab" * 32 and inc["policy"] == "hyperliquid"
    assert inc["neighbour_above"][0]["account_name"] == "bob" and inc["neighbour_above"][0]["index_decimal"] == "46"
    assert inc["neighbour_below"][0]["account_name"] == "dave" and inc["neighbour_below"][0]["unit_name"] == "BTC"
    assert inc["price_usdc"] == "88200" and inc["size_base"] == "0.5" and inc["realized_pnl"] == 150 * USDC
    text = "\n".join(inc["text"])
    assert "Height 9 (2026-01-01T00:00:09.500Z): carol was auto-deleveraged in BTC against alice." in text
    assert "rank 2 of 3; hyperliquid ranking, queue hash " + "ab" * 32 in text
    assert "7/3 ≈ 2.3333333" in text
    assert "above it: bob" in text and "below it: dave" in text
    assert "Closed: 0.5 BTC of its short position at 88,200 USDC" in text
    assert "realized +150 USDC" in text
    # The first in the queue has nobody above it.
    first = X.explain_events(blocks, BOB, legend)["incidents"][0]
    assert first["rank"] == 1 and "nobody (it was first in the queue)" in "\n".join(first["text"])


def test_underwater_side_of_adl(legend: X.Legend) -> None:
    events = adl_events() + [AdlShortfall(market=0, underwater=ALICE, unmatched=100)]
    report = X.explain_events([X.BlockEvents(height=9, time_ms=None, events=events)], ALICE, legend)
    [inc] = report["incidents"]
    assert inc["role"] == "liquidated"
    text = "\n".join(inc["text"])
    assert "rank 1: bob took 2 BTC at 88,200 USDC" in text
    assert "rank 2: carol took 0.5 BTC at 88,200 USDC" in text
    assert "ADL shortfall: 0.1 BTC could not be matched this block" in text
    assert len(inc["adl"][0]["steps"]) == 2


def round_two_events() -> list:
    """adl_events, but carol's 0.5 BTC is closed in round 2, at the mark 88,500 (protocol §12.7)."""
    events = adl_events()
    step = events[2]
    events[2] = AdlStep(**{**{f: getattr(step, f) for f in step.__struct_fields__}, "price": P(88_500)})
    return events


# protocol 12.7: which price an ADL step closed at, as explain says it (round 1: the bankruptcy price;
# round 2: the mark). Each case: the events, whose view, a phrase that must appear, one that must not.
PRICE_BASIS = [
    (adl_events, CAROL, "at 88,200 USDC (the underwater account's bankruptcy price)", "round 2", "round 1, winner"),
    (
        round_two_events,
        CAROL,
        "at 88,500 USDC (the mark: round 2, for the lots no winner could afford at the bankruptcy price 88,200 USDC",
        "(the underwater account's bankruptcy price)",
        "round 2, winner",
    ),
    (
        round_two_events,
        BOB,
        "at 88,200 USDC (the underwater account's bankruptcy price)",
        "round 2",
        "round 1, other winner",
    ),
    (
        round_two_events,
        ALICE,
        "rank 2: carol took 0.5 BTC at 88,500 USDC [round 2, at the mark]",
        "rank 1: bob took 2 BTC at 88,200 USDC [round 2",
        "round 2, underwater",
    ),
    (adl_events, ALICE, "closed at its bankruptcy price 88,200 USDC against", "at the mark", "round 1, underwater"),
]


@pytest.mark.parametrize(
    ("events", "who", "present", "absent"), [c[:4] for c in PRICE_BASIS], ids=[c[4] for c in PRICE_BASIS]
)
def test_adl_step_says_which_price_it_closed_at(
    legend: X.Legend, events: Callable[[], list], who: bytes, present: str, absent: str
) -> None:
    report = X.explain_events([X.BlockEvents(height=9, time_ms=None, events=events())], who, legend)
    text = "\n".join(line for inc in report["incidents"] for line in inc["text"])
    assert present in text
    assert absent not in text


def test_backstop_and_insurance_fund_view(legend: X.Legend) -> None:
    snap = PositionSnapshot(market=1, size=-10_000, cost=-(32_000_000 * 10_000), mark=33_000_000)
    events = [
        LiquidationTriggered(
            account=DAVE, market=1, value=100 * USDC, maintenance_margin=660 * USDC, positions=[snap], method="backstop"
        ),
        Backstop(
            account=DAVE,
            unit=1,
            reason="below 2/3 of maintenance",
            value=100 * USDC,
            maintenance_margin=660 * USDC,
            positions=[snap],
            margin_taken=100 * USDC,
            fund_before=50_000 * USDC,
            fund_after=50_100 * USDC,
        ),
    ]
    blocks = [X.BlockEvents(height=3, time_ms=None, events=events)]
    inc = X.explain_events(blocks, DAVE, legend)["incidents"][0]
    text = "\n".join(inc["text"])
    assert "dave's isolated ETH position was liquidated" in text
    assert "ETH short 100 at entry 3,200, mark 3,300" in text
    assert "Backstop (below 2/3 of maintenance): the insurance fund took over the isolated ETH position" in text
    assert "fund 50,000 -> 50,100 USDC" in text
    assert "not backstopped" not in text
    fund = X.explain_events(blocks, INSURANCE_FUND, legend)
    assert [i["role"] for i in fund["incidents"]] == ["insurance_fund"]
    assert fund["name"] == "insurance_fund"


def test_nothing_happened_and_height_filter(legend: X.Legend) -> None:
    blocks = [X.BlockEvents(height=7, time_ms=None, events=example1_events())]
    assert X.explain_events(blocks, CAROL, legend)["nothing_happened"]  # carol is only in the queue's top list
    assert X.explain_events(blocks, ALICE, legend, height=6)["nothing_happened"]
    assert not X.explain_events(blocks, ALICE, legend, height=7)["nothing_happened"]
    # A maker of a liquidation fill was not liquidated or deleveraged.
    assert X.explain_events(blocks, DAVE, legend)["nothing_happened"]


def test_event_json_and_text_of_every_waterfall_event(legend: X.Legend) -> None:
    for e in example1_events() + adl_events() + [AdlShortfall(market=0, underwater=ALICE, unmatched=-5)]:
        d = X.event_json(e, legend)
        assert d["type"] == type(e).__name__
        json.dumps(d)  # serializable
        lines = X.event_text(e, legend)
        assert lines and not lines[0].startswith(type(e).__name__ + " ")  # a specific, not the generic, rendering
    step = X.event_json(adl_events()[2], legend)
    assert step["counterparty"] == checksum_address(CAROL) and step["counterparty_name"] == "carol"
    assert step["price"] == 88_200_000 and step["price_usdc"] == "88200"
    assert step["size_base"] == "0.5" and step["index_decimal"] == "2.3333333"
    assert step["neighbour_above"][0]["size_base"] == "-2"
    queue = X.event_json(adl_events()[0], legend)
    assert queue["underwater_unit_name"] == "cross" and queue["ranking_hash"] == "ab" * 32
    trig = X.event_json(example1_events()[0], legend)
    assert trig["positions"][0]["mark_usdc"] == "88500" and trig["positions"][0]["market_name"] == "BTC"


def test_unknown_event_shape_falls_back_to_generic_text(legend: X.Legend) -> None:
    r = Receipt(
        tx_index=0, tx_id=b"\x01" * 32, signer=ALICE, account=ALICE, action="Withdraw", ok=False, code="X", message="m"
    )
    assert X.event_text(r, legend) == ["tx 0: alice Withdraw REJECTED X: m"]

    class Odd:  # not a struct the module knows
        pass

    assert X.event_text(Odd(), legend)[0].startswith("Odd")


def test_resolve_account() -> None:
    assert X.resolve_account("alice") == ALICE
    assert X.resolve_account(checksum_address(ALICE)) == ALICE
    assert X.resolve_account("insurance_fund") == INSURANCE_FUND
    with pytest.raises(ValueError):
        X.resolve_account("0x1234")


# ---------------------------------------------------------------- the command
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clearinghouse.tools.cli", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
    )


def test_cli_on_a_log_and_a_state_dir(chain, tmp_path: Path) -> None:
    _, log = chain
    r = run_cli("explain", str(log), "--account", "alice")
    assert r.returncode == 0, r.stderr
    assert "Nothing happened to alice" in r.stdout
    r = run_cli("explain", str(log), "--account", "alice", "--json")
    report = json.loads(r.stdout)
    assert report["nothing_happened"] and report["source_kind"] == "log" and report["policy"] == "seed"
    db = tmp_path / "db"
    assert run_cli("replay", str(log), "--db", str(db)).returncode == 0
    r = run_cli("explain", str(db), "--account", checksum_address(BOB), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["source_kind"] == "lmdb"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--account", "0x1234"], 2, "bad account"),
        (["--account", "alice", "--height", "99"], 1, "beyond the chain's last block"),
        (["--account", "alice", "--height", "0"], 2, "--height must be at least 1"),
    ],
)
def test_cli_errors(chain, args, code, message) -> None:
    _, log = chain
    r = run_cli("explain", str(log), *args)
    assert r.returncode == code
    assert r.stderr.startswith("error: ") and message in r.stderr and "Traceback" not in r.stderr


def test_cli_bad_sources(tmp_path: Path) -> None:
    r = run_cli("explain", str(tmp_path / "missing.log"), "--account", "alice")
    assert r.returncode == 1 and "no such log file" in r.stderr
    r = run_cli("explain", str(tmp_path), "--account", "alice")
    assert r.returncode == 1 and "not an LMDB state database" in r.stderr
    junk = tmp_path / "junk.log"
    junk.write_bytes(b"not a log at all")
    r = run_cli("explain", str(junk), "--account", "alice")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_cli_renders_synthetic_history(chain, monkeypatch, capsys, legend: X.Legend) -> None:
    """The command end to end (in process) on hand-built events."""
    from clearinghouse.tools import cli

    history = X.History(
        source="synthetic",
        kind="log",
        height=9,
        policy="seed",
        legend=legend,
        blocks=[
            X.BlockEvents(height=7, time_ms=None, events=example1_events()),
            X.BlockEvents(height=9, time_ms=None, events=adl_events()),
        ],
    )
    monkeypatch.setattr(X, "load_history", lambda path, names=None: history)
    assert cli.main(["explain", "synthetic", "--account", "bob"]) == 0
    out = capsys.readouterr().out
    assert "bob covered 600 USDC of alice's deficit" in out and "bob was auto-deleveraged in BTC against alice" in out
    assert cli.main(["explain", "synthetic", "--account", "bob", "--height", "9", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [i["role"] for i in report["incidents"]] == ["adl_counterparty"]


# ---------------------------------------------------------------- end to end (when the waterfall exists)
CRASH = """
name = "crash"
[chain]
policy = "hyperliquid"
insurance_fund = "0"
[[market]]
name = "BTC"
sz_decimals = 3
max_leverage = 50
initial_price = "90000"
[accounts]
alice = "2000"
bob = "100000"
carol = "100000"

[[step]]
do = "leverage"
account = "alice"
market = "BTC"
leverage = 50
[[step]]
do = "order"
account = "bob"
market = "BTC"
side = "sell"
price = "90000"
size = "1"
[[step]]
do = "order"
account = "alice"
market = "BTC"
side = "buy"
price = "90000"
size = "1"
tif = "IOC"
[[step]]
do = "order"
account = "carol"
market = "BTC"
side = "buy"
price = "85000"
size = "1"
[[step]]
do = "oracle"
prices = { BTC = "86000" }
[[step]]
do = "block"
[[step]]
do = "oracle"
prices = { BTC = "86000" }
[[step]]
do = "block"
"""


def test_end_to_end_crash_explained(tmp_path: Path) -> None:
    engine_landed = any((REPO / "clearinghouse" / f).exists() for f in ("waterfall.py", "adl.py", "liquidation.py"))
    log = tmp_path / "crash.log"
    run = run_scenario(parse_scenario(CRASH, "crash.toml"), str(log))
    triggered = [e for b in run.blocks for e in b.events if type(e).__name__ == "LiquidationTriggered"]
    if not triggered:
        pytest.skip(
            "the liquidation engine does not emit LiquidationTriggered yet"
            + (" (module present)" if engine_landed else "")
        )
    r = run_cli("explain", str(log), "--account", "alice", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert not report["nothing_happened"]
    inc = next(i for i in report["incidents"] if i["role"] == "liquidated")
    assert inc["triggers"] and inc["triggers"][0]["value"] < inc["triggers"][0]["maintenance_margin"]
    r = run_cli("explain", str(log), "--account", "alice")
    assert "was liquidated" in r.stdout
    steps = [e for b in run.blocks for e in b.events if type(e).__name__ == "AdlStep"]
    for s in steps:
        r = run_cli("explain", str(log), "--account", checksum_address(bytes(s.counterparty)), "--json")
        roles = [i["role"] for i in json.loads(r.stdout)["incidents"]]
        assert "adl_counterparty" in roles


SEED_EXAMPLE_1 = """
name = "seed example 1 (protocol section 12.9)"
[chain]
policy = "seed"
[[market]]
name = "BTC"
sz_decimals = 1
max_leverage = 50
initial_price = "90000"
taker_fee = "0"
maker_fee = "0"
[accounts]
alice = "1800"
bob = "7240"
mm = "1000000"
[[step]]
do = "leverage"
account = "alice"
market = "BTC"
leverage = 50
mode = "isolated"
[[step]]
do = "leverage"
account = "bob"
market = "BTC"
leverage = 25
mode = "isolated"
[[step]]
do = "order"
account = "mm"
market = "BTC"
side = "sell"
price = "90000"
size = "1"
[[step]]
do = "order"
account = "alice"
market = "BTC"
side = "buy"
price = "90000"
size = "1"
tif = "IOC"
[[step]]
do = "order"
account = "mm"
market = "BTC"
side = "buy"
price = "90500"
size = "2"
[[step]]
do = "order"
account = "bob"
market = "BTC"
side = "sell"
price = "90500"
size = "2"
tif = "IOC"
[[step]]
do = "order"
account = "mm"
market = "BTC"
side = "buy"
price = "87600"
size = "1"
[[step]]
do = "oracle"
prices = { BTC = "88500" }
[[step]]
do = "block"
"""


def test_end_to_end_seed_deficit_cover_explained(tmp_path: Path) -> None:
    """The article's example 1 under the seed policy: explain's numbers are the events' numbers."""
    log = tmp_path / "seed1.log"
    run = run_scenario(parse_scenario(SEED_EXAMPLE_1, "seed1.toml"), str(log))
    covers = [e for b in run.blocks for e in b.events if type(e).__name__ == "DeficitCover"]
    if not covers:
        pytest.skip("the seed policy does not emit DeficitCover events yet")
    r = run_cli("explain", str(log), "--account", "bob", "--names", "alice,mm", "--json")
    assert r.returncode == 0, r.stderr
    inc = json.loads(r.stdout)["incidents"][0]
    assert inc["role"] == "deficit_cover_counterparty" and inc["underwater_name"] == "alice"
    assert (inc["size"], inc["reference_price"], inc["realized_pnl"], inc["covered"]) == (
        covers[0].size,
        covers[0].reference_price,
        covers[0].realized_pnl,
        covers[0].covered,
    )
    r = run_cli("explain", str(log), "--account", "alice", "--names", "bob,mm")
    assert r.returncode == 0, r.stderr
    assert "alice's isolated BTC position was liquidated" in r.stdout
    assert "Deficit cover (BTC): bob (rank 1)" in r.stdout
