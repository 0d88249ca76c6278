"""``clearinghouse whatif``: ADL figures checked by hand on a tiny chain, stable JSON, any policy name in
``policies.POLICIES``, the non-consensus ADL-disabled hook, a generated crash, the HTML page."""

from __future__ import annotations

import dataclasses
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from clearinghouse.tools.adl_metrics import frac_json, gini
from clearinghouse.tools.cli import main
from clearinghouse.tools.whatif import whatif

SCENARIO = REPO_ROOT / "fixtures" / "scenarios" / "cascade_hyperliquid.toml"
FIXTURE = REPO_ROOT / "fixtures" / "logs" / "cascade_generated.log"


@pytest.fixture(scope="module")
def cascade_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("whatif") / "cascade.log"
    assert main(["scenario", "compile", str(SCENARIO), "--log", str(path)]) == 0
    return path


def _state_around_block_6(log: Path) -> dict[str, int]:
    """What the hand computation needs, read from the chain: the fund's position and cash and
    frank's and erin's accounts before block 6, and the BTC mark of block 6."""
    from clearinghouse.chain.engine import Engine, iter_log
    from clearinghouse.spec.state.keys import INSURANCE_FUND, account_key, market_state_key, position_key
    from state import MemoryStore
    from tx.messages import Genesis
    from tx.signing import Signer

    names = {
        who: Signer.from_name(who).address for who in ("frank", "erin")
    }  # scenario accounts sign with their names' test keys
    engine = Engine(MemoryStore())
    out: dict[str, int] = {}
    for _i, item in iter_log(str(log)):
        if isinstance(item, Genesis):
            engine.init_genesis(item)
            continue
        if item.block.header.height == 6:
            v = engine.view()
            fund = v.get(position_key(0, INSURANCE_FUND))
            out.update(fund_size=fund.size, fund_cash=v.get(account_key(INSURANCE_FUND)).cash)
            for who, addr in names.items():
                pos = v.get(position_key(0, addr))
                out[f"{who}_size"] = pos.size
                out[f"{who}_cash"] = v.get(account_key(addr)).cash
                out[f"{who}_iso_cash"] = pos.iso_cash
        engine.apply_logged(item)
        if item.block.header.height == 6:
            out["mark"] = engine.view().get(market_state_key(0)).mark_price
            break
    return out


def test_figures_by_hand_on_the_cascade_scenario(cascade_log: Path) -> None:
    """Block 6 of the cascade (figures at the time of writing; the test reads the inputs from the
    chain so that it survives a change of the mark rule). The fund holds the 2,400 lots it
    backstopped from dave, long, with cash -204,162,000,000 µUSDC; the oracle falls to 80,000 and
    the mark is 81,120,645 (units of 0.001 USDC):

    D = -(cash + size x mark) = 204,162,000,000 - 2,400 x 81,120,645 = 9,472,452,000
    bankruptcy price p = mark + D / 2,400 = 81,120,645 + 3,946,855 = 85,067,500
    ADL: frank's 2,000 lots (rank 1) and erin's 400 lots (rank 2) close at p:
    B = (p - mark) x (2,000 + 400) = 3,946,855 x 2,400 = 9,472,452,000
    H: in the ADL-disabled replay both still hold their shorts at the mark of the same block, so each
       is worse off by exactly (p - mark) x its lots: frank 7,893,710,000, erin 1,578,742,000; H = B
    Gini of (1,578,742,000, 7,893,710,000) = (x2 - x1) / (2 (x1 + x2)) = 4 / 12 = 1/3 (x2 = 5 x1)
    largest share: frank's haircut over his equity without ADL (cash + iso_cash + size x mark)
    = 7,893,710,000 / 47,657,719,000
    notional closed = 2,400 x 85,067,500 = 204,162,000,000
    """
    s = _state_around_block_6(cascade_log)
    mark, size = s["mark"], s["fund_size"]
    d = -(s["fund_cash"] + size * mark)
    p = mark + -(-d // size)  # the fund's bankruptcy price, rounded up (in the fund's favour)
    assert size == 2_400 and s["frank_size"] == -2_000 and s["erin_size"] == -2_000 and d > 0
    frank_lots, erin_lots = 2_000, size - 2_000  # frank ranks first and can afford all of his (scenario)
    report = whatif(str(cascade_log), ["hyperliquid"])
    r = report["results"]["hyperliquid"]
    assert r["mode"] == "verified" and len(r["waves"]) == 1
    w = r["waves"][0]
    assert (w["first_height"], w["last_height"]) == (6, 6)
    assert w["deficit"] == d
    assert w["budget"] == (p - mark) * size
    frank, erin = (p - mark) * frank_lots, (p - mark) * erin_lots
    assert w["haircut"] == frank + erin and w["overshoot"] == w["haircut"] - w["budget"] == 0
    assert w["accounts_hit"] == 2 and w["counterparties"] == 2 and w["adl_fills"] == 2
    assert w["notional_closed"] == size * p
    assert w["gini"]["num"] + "/" + w["gini"]["den"] == str(gini([frank, erin])) and gini([frank, erin]) == Fraction(
        abs(frank - erin), 2 * (frank + erin)
    )
    frank_equity = s["frank_cash"] + s["frank_iso_cash"] + s["frank_size"] * mark
    share = Fraction(int(w["largest_haircut_share"]["num"]), int(w["largest_haircut_share"]["den"]))
    assert share == Fraction(frank, frank_equity)
    assert w["fund_before"] == -d and w["fund_after"] == 0 and w["bad_debt_left"] == 0
    assert r["total"]["haircut"] == w["haircut"] and r["total"]["waves"] == 1
    # Without ADL the fund keeps its deficit: bad debt left in the baseline.
    assert r["baseline"]["bad_debt_left"] == d
    if mark == 81_120_645:  # the rules at the time of writing: the docstring's numbers
        assert (d, p, frank, erin, frank_equity) == (
            9_472_452_000,
            85_067_500,
            7_893_710_000,
            1_578_742_000,
            47_657_719_000,
        )


def test_gini_and_fractions_exactly() -> None:
    assert gini([]) == 0 and gini([5, 5, 5]) == 0
    assert gini([0, 0, 1]) == Fraction(2, 3)
    assert gini([1, 5]) == Fraction(1, 3)
    assert gini([3, 1, 2]) == Fraction(2, 9)  # Σ|xi - xj| = 8, 2 n Σx = 36
    assert frac_json(Fraction(2, 3)) == {"num": "2", "den": "3", "decimal": "0.666667"}
    assert frac_json(Fraction(-1, 8), 2)["decimal"] == "-0.13"


def test_json_is_stable_and_policies_are_compared(cascade_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outs = []
    for _ in range(2):
        assert main(["whatif", str(cascade_log), "--policies", "hyperliquid,bitmex,seed", "--json"]) == 0
        outs.append(capsys.readouterr().out)
    assert main(["whatif", str(cascade_log), "--policies", "hyperliquid,bitmex,seed", "--json", "--full"]) == 0
    outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] == outs[2]  # stable, and the same when every policy replays from genesis
    report = json.loads(outs[0])
    jsonschema = pytest.importorskip("jsonschema")
    from clearinghouse.tools.schemas import schema

    jsonschema.Draft202012Validator.check_schema(schema("whatif"))
    jsonschema.Draft202012Validator(schema("whatif")).validate(report)
    assert report["policies"] == ["hyperliquid", "bitmex", "seed"] and "timing" not in report
    res = report["results"]
    assert res["hyperliquid"]["mode"] == "verified" and res["bitmex"]["mode"] == res["seed"]["mode"] == "counterfactual"
    assert res["hyperliquid"]["baseline"]["shared_with"] == ["hyperliquid", "bitmex"]  # same liquidation switches
    assert res["seed"]["baseline"]["shared_with"] == ["seed"]
    for r in res.values():
        for key in ("deficit", "budget", "haircut", "adl_fills", "notional_closed"):
            assert r["total"][key] == sum(w[key] for w in r["waves"])


def test_text_table(cascade_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whatif", str(cascade_log), "--policies", "seed,hyperliquid", "--wide", "--timing"]) == 0
    out = capsys.readouterr().out
    assert "9,472.45" in out and "…" not in out and "processor time" in out


def test_unknown_policy_and_missing_log(cascade_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whatif", str(cascade_log), "--policies", "hyperliquid,nope", "--json"]) == 1
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["code"] == "UNKNOWN_POLICY" and "nope" in err["message"]
    assert main(["whatif", str(tmp_path / "missing.log")]) == 1


def test_any_name_in_policies_is_accepted(cascade_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy added to policies.POLICIES later (e.g. pro-rata) needs no change to whatif."""
    from clearinghouse.spec import block as transition
    from clearinghouse.spec.waterfall import policies

    extra = dataclasses.replace(policies.POLICIES["bitmex"], name="lab-test")
    monkeypatch.setitem(policies.POLICIES, "lab-test", extra)
    monkeypatch.setattr(transition, "SUPPORTED_POLICIES", tuple(sorted(policies.POLICIES)))
    report = whatif(str(cascade_log), ["lab-test", "hyperliquid"])
    assert report["results"]["lab-test"]["mode"] == "counterfactual"
    assert report["results"]["lab-test"]["total"]["adl_fills"] > 0


def test_adl_disabled_hook_is_tool_only(cascade_log: Path) -> None:
    """The hook changes nothing unless a tool sets it, and is reset after the tool's replay."""
    from clearinghouse.spec import end_of_block
    from clearinghouse.tools.whatif import read_genesis, replay

    assert end_of_block._TOOL_HOOK.get() is None
    genesis = read_genesis(str(cascade_log))
    off = replay(str(cascade_log), genesis, "hyperliquid", "adl_disabled", snapshot_heights=set())
    assert end_of_block._TOOL_HOOK.get() is None
    on = replay(str(cascade_log), genesis, "hyperliquid", "verified")
    assert off.final_root != on.final_root and off.final_bad_debt > 0 == on.final_bad_debt
    assert main(["verify", str(cascade_log)]) == 0


def test_generated_crash_has_waves_under_every_policy_and_forking_is_exact(tmp_path: Path) -> None:
    from test_generate import small_crash

    from clearinghouse.tools.generate import generate

    log = tmp_path / "crash.log"
    generate(log, small_crash(), workers=1)
    six = ["hyperliquid", "bitmex", "seed", "pro-rata", "risk-water-filling", "clawback"]
    a = whatif(str(log), six)
    full = whatif(str(log), six, full=True)
    assert a.pop("_timing")["fork_height"] > 0 and full.pop("_timing")["fork_height"] is None
    assert json.dumps(a, sort_keys=True) == json.dumps(full, sort_keys=True)  # the fork changes nothing but the cost
    for p, r in a["results"].items():
        assert len(r["waves"]) >= 2, p
        for w in r["waves"]:
            assert w["deficit"] >= 0 and w["budget"] >= 0 and w["haircut"] >= 0 and w["accounts_hit"] >= 0
    assert a["results"]["hyperliquid"]["mode"] == "verified"
    # Clawback moves cash only: no fill, yet its charges (Clawback events) are budget and hit accounts.
    claw = a["results"]["clawback"]["total"]
    assert claw["adl_fills"] == 0 and claw["budget"] > 0 and claw["counterparties"] > 0 and claw["accounts_hit"] > 0
    # Pro-rata closes every winner of the first wave at once: at least as many as the queue's head.
    first = {p: a["results"][p]["waves"][0] for p in ("hyperliquid", "pro-rata")}
    assert first["pro-rata"]["counterparties"] >= first["hyperliquid"]["counterparties"]


def test_html_page_is_self_contained(cascade_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lab.html"
    assert main(["whatif", str(cascade_log), "--html", str(out), "--json"]) == 0
    capsys.readouterr()
    page = out.read_text()
    assert (
        "Content-Security-Policy" in page
        and page.count('<div class="chart" data-chart="bars" data-spec="chart-spec-') == 10
    )
    assert page.count('<div class="chart" data-chart="line" data-spec="chart-spec-') == 1
    assert set(re.findall(r"https?://[^\s\"']+", page)) <= {"http://www.w3.org/2000/svg"}


@pytest.mark.soak
def test_whatif_on_the_generated_cascade_fixture_against_verify(capsys: pytest.CaptureFixture[str]) -> None:
    import time

    start = time.process_time()
    assert main(["verify", str(FIXTURE)]) == 0
    verify_s = time.process_time() - start
    report = whatif(str(FIXTURE), ["hyperliquid", "bitmex", "seed", "pro-rata", "risk-water-filling", "clawback"])
    timing = report.pop("_timing")
    assert len(report["results"]["hyperliquid"]["waves"]) >= 3
    with capsys.disabled():
        print(
            f"\nwhatif 6 policies: {timing['total']:.1f} s of processor time ({timing}); one verify {verify_s:.1f} s; "
            f"ratio {timing['total'] / verify_s:.1f}"
        )


def test_a_log_that_does_not_verify_under_its_own_policy(
    cascade_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cascade's blocks under a genesis that names another policy: the chain record (and so
    every state root) differs, and whatif refuses the log like verify does."""
    import msgspec

    from clearinghouse.chain.engine import iter_log
    from tx.encoding import encode
    from tx.logfile import FRAME_BLOCK, FRAME_GENESIS, LogWriter
    from tx.messages import Genesis

    forged = tmp_path / "forged.log"
    writer = LogWriter(forged, create=True)
    for _i, item in iter_log(str(cascade_log)):
        if isinstance(item, Genesis):
            writer.append(FRAME_GENESIS, encode(msgspec.structs.replace(item, policy="bitmex")))
        else:
            writer.append(FRAME_BLOCK, encode(item))
    writer.close()
    assert main(["whatif", str(forged), "--json"]) == 1
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["code"] == "VERIFY_MISMATCH" and "height 1" in err["message"]


def _browser() -> str | None:
    import os

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None
    path = os.environ.get("CLEARINGHOUSE_CHROMIUM", "/usr/bin/chromium")
    return path if os.path.isfile(path) else None


@pytest.mark.skipif(_browser() is None, reason="Chromium or Playwright is not installed")
def test_html_page_renders_offline_in_headless_chromium(
    cascade_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.sync_api import sync_playwright

    out = tmp_path / "lab.html"
    assert main(["whatif", str(cascade_log), "--html", str(out), "--json"]) == 0
    capsys.readouterr()
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=_browser(),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri())
            page.wait_for_selector("html[data-charts-rendered]", state="attached", timeout=20_000)
            assert page.locator("html").get_attribute("data-charts-rendered") == "11"
            svgs = page.locator("svg.ch-svg")
            assert svgs.count() == 11 and all(int(svgs.nth(i).get_attribute("data-points") or 0) > 0 for i in range(11))
        finally:
            browser.close()
    assert problems == [] and requests == [out.as_uri()]
