"""``clearinghouse whatif --html OUT``: the policy comparison as one self-contained offline page.

Reuses the report page of ``clearinghouse report`` (``tools/report.py``: ``Page`` and
the inlined ``charts.js``; no network, a Content-Security-Policy forbids fetches):
one bar chart per figure across policies (the totals, then the figure per wave),
and the insurance fund's path per policy as a line chart. Floats here are for
drawing only; the exact figures are in the table and in ``--json``.
"""

from __future__ import annotations

import os
from typing import Any

from clearinghouse.tools.report import Page

FIGURES = (
    ("deficit", "D: deficit before ADL (USDC)", True),
    ("budget", "B: needed budget, Σ |mark - price| x size (USDC)", True),
    ("haircut", "H: winners' haircut against the ADL-disabled replay (USDC)", True),
    ("overshoot", "H - B: overshoot (USDC)", True),
    ("accounts_hit", "accounts hit (haircut > 0)", False),
    ("counterparties", "ADL counterparties", False),
    ("notional_closed", "notional closed by ADL (USDC)", True),
    ("largest_haircut_share", "largest haircut as a share of equity", False),
    ("gini", "Gini coefficient of haircuts", False),
    ("bad_debt_left", "bad debt left (USDC)", True),
)


def _value(v: Any, amount: bool) -> float:
    if v is None:
        return 0.0
    if isinstance(v, dict):
        return float(v["decimal"])
    return v / 1_000_000 if amount else float(v)


def build_html(report: dict[str, Any]) -> str:
    from clearinghouse.tools.adl_metrics import cell

    policies = report["policies"]
    page = Page(
        f"ADL policy lab: {os.path.basename(report['log'])}",
        f"{report['log']} · genesis policy {report['genesis_policy']} · waves split at gaps > {report['gap_ms']} ms · "
        "generated offline by clearinghouse whatif",
    )
    page.section("Totals")
    headers = ["policy", "mode", "waves"] + [title.split(":")[0] for _k, title, _a in FIGURES]
    rows = []
    for p in policies:
        r = report["results"][p]
        t = r["total"]
        rows.append([p, r["mode"], str(t["waves"])] + [cell(k, t[k]) for k, _t, _a in FIGURES])
    page.table(headers, rows)
    page.text(
        "Amounts in USDC. Definitions: docs/adl-lab.md. The log's own policy is verified against the headers; "
        "the others are counterfactual replays of the same transactions.",
        muted=True,
    )
    page.section("Each figure across policies")
    for key, title, amount in FIGURES:
        bars = [
            {
                "label": p,
                "value": round(_value(report["results"][p]["total"][key], amount), 6),
                "note": "all waves",
                "highlight": p == report["genesis_policy"],
            }
            for p in policies
        ]
        for p in policies:
            for w in report["results"][p]["waves"]:
                bars.append(
                    {
                        "label": f"{p} w{w['wave']}",
                        "value": round(_value(w[key], amount), 6),
                        "note": f"heights {w['first_height']}-{w['last_height']}",
                        "highlight": False,
                    }
                )
        page.chart("bars", {"title": title, "valueLabel": "USDC" if amount else "", "bars": bars})
    page.section("Insurance fund")
    series = []
    for p in policies:
        r = report["results"][p]
        points = [[h, v / 1_000_000] for h, v in r["fund_path"]]
        if points and points[-1][0] != r["height"]:
            points.append([r["height"], points[-1][1]])  # the step line runs to the last block
        series.append({"name": p, "points": points, "step": True})
    page.chart(
        "line",
        {
            "title": "insurance fund value after each block (USDC), per policy",
            "yLabel": "USDC",
            "xType": "number",
            "series": series,
            "markers": [],
        },
    )
    return page.html()


def write_html(report: dict[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(build_html(report))
