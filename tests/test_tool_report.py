"""Issue 11, the report page: one self-contained offline HTML file whose charts render in a real headless
browser (Chromium from the OS packages, driven by Playwright) with no console error and no network request.

The screenshot is kept: in $CLEARINGHOUSE_ARTIFACTS when set (CI), else in the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from test_tool_safety import run_cli

ROOT = Path(__file__).resolve().parent.parent
CASCADE = ROOT / "fixtures" / "scenarios" / "cascade_hyperliquid.toml"
CHROMIUM = os.environ.get("CLEARINGHOUSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("report")
    rc, _o, err = run_cli(["demo", "--out", base / "demo", "--json"])
    assert rc == 0, err
    log = base / "cascade.log"
    assert run_cli(["scenario", "compile", CASCADE, "--log", log])[0] == 0
    out = {}
    for name, source, extra in (("demo", base / "demo" / "demo.log", []), ("cascade", log, ["--scenario", CASCADE])):
        page = base / f"{name}.html"
        rc, _o, err = run_cli(["report", source, "-o", page, *extra])
        assert rc == 0, err
        out[name] = page
    return out


def test_report_is_self_contained(reports: dict[str, Path]) -> None:
    for page in reports.values():
        text = page.read_text(encoding="utf-8")
        assert "Content-Security-Policy" in text and "default-src 'none'" in text
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, re.I)
        assert not re.search(r"@import|url\(\s*['\"]?https?:|fetch\(|XMLHttpRequest|<link\b|<iframe\b", text, re.I)
        assert text.count('data-chart="') >= 5
        for section in (
            "Prices: mark against oracle",
            "Open interest",
            "Insurance fund",
            "ADL queues",
            "Equity of the accounts involved",
            "Incidents, explained",
        ):
            assert section in text


def test_report_errors(tmp_path: Path) -> None:
    rc, _o, err = run_cli(["report", tmp_path, "-o", tmp_path / "r.html"])
    assert rc == 1 and "needs the log" in err
    rc, _o, err = run_cli(["report", tmp_path / "missing.log"])
    assert rc == 1 and "no such log file" in err


def _browser_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401  (only whether it is installed)
    except ImportError:
        return False
    return os.path.isfile(CHROMIUM)


@pytest.mark.skipif(
    not _browser_available() and not os.environ.get("CLEARINGHOUSE_REQUIRE_BROWSER"),
    reason="Chromium or Playwright is not installed (.ci/run installs them)",
)
@pytest.mark.parametrize("name", ["cascade", "demo"])
def test_report_renders_in_headless_chromium(reports: dict[str, Path], name: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    artifacts = Path(os.environ.get("CLEARINGHOUSE_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / f"report-{name}.png"
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(reports[name].as_uri())
            page.wait_for_selector("html[data-charts-rendered]", state="attached", timeout=20_000)
            declared = page.locator("[data-chart]").count()
            assert page.locator("html").get_attribute("data-charts-rendered") == str(declared) and declared >= 5
            svgs = page.locator("svg.ch-svg")
            assert svgs.count() == declared
            points = [int(svgs.nth(i).get_attribute("data-points") or 0) for i in range(declared)]
            assert all(n > 0 for n in points), points
            assert page.locator("path.ch-line").count() >= 5  # mark, oracle, open interest, fund, equity lines
            assert page.locator(".ch-marker[data-kind='liquidation']").count() > 0
            assert page.locator(".ch-marker[data-kind='adl']").count() > 0
            assert page.locator(".ch-bar-hi").count() > 0  # the deleveraged entries of the ADL queue
            assert page.locator("pre.explain").count() > 0
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert problems == [], problems
    assert requests == [reports[name].as_uri()], requests  # the page itself, nothing else
    assert shot.stat().st_size > 10_000
    if os.environ.get("CLEARINGHOUSE_ARTIFACTS"):
        shutil.copy(reports[name], artifacts / f"report-{name}.html")
