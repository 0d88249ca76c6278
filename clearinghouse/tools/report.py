"""``clearinghouse report LOG -o report.html``: a cascade report page, one self-contained offline file.

The page shows, over block time: mark against oracle per market with every
liquidation, backstop and ADL fill marked on the price line; open interest; the
insurance fund's value; the ranked ADL queue at each ADL event; the equity of
every account the waterfall touched; and each incident explained in words
(``explain``). Nothing is fetched: the chart code (``charts.js``) and the styles
are inlined, and a Content-Security-Policy forbids any network access.

Reusable pieces for other pages (a policy comparison will use the same charts):
:class:`Page` (sections, headings, text, charts, tables; ``html()``), the chart
spec builders :func:`price_chart`, :func:`series_chart`, :func:`queue_chart`, and
:func:`collect` (the per-block figures of a log).
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from clearinghouse.spec.events import Fill, PositionTransfer
from clearinghouse.spec.state.keys import INSURANCE_FUND, market_state_key
from clearinghouse.spec.waterfall.events import (
    AdlQueue,
    AdlStep,
    Backstop,
    DeficitCover,
    InsuranceCover,
    LiquidationTriggered,
)
from clearinghouse.tools.explain import (
    WATERFALL_TYPES,
    Legend,
    MarketInfo,
    explain_events,
)
from clearinghouse.tools.explain import BlockEvents as ExplainBlock

MAX_POINTS = 1500
"""Most samples per series; longer logs are strided (blocks with waterfall events are always kept)."""
MAX_ACCOUNTS = 10
"""Most accounts in the equity chart (liquidated accounts first, then ADL counterparties)."""


# ---------------------------------------------------------------- page
def _asset(name: str) -> str:
    return resources.files("clearinghouse.tools").joinpath(name).read_text(encoding="utf-8")


CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


class Page:
    """An offline HTML page of sections with charts (SVG drawn by the inlined charts.js)."""

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self._parts: list[str] = []
        self._specs = 0
        self._open = False

    def section(self, heading: str) -> Page:
        self._close()
        self._parts.append(f"<section><h2>{html.escape(heading)}</h2>")
        self._open = True
        return self

    def _close(self) -> None:
        if self._open:
            self._parts.append("</section>")
            self._open = False

    def heading(self, text: str) -> Page:
        self._parts.append(f"<h3>{html.escape(text)}</h3>")
        return self

    def text(self, text: str, *, muted: bool = False) -> Page:
        cls = ' class="muted"' if muted else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def pre(self, lines: list[str]) -> Page:
        self._parts.append(f'<pre class="explain">{html.escape(chr(10).join(lines))}</pre>')
        return self

    def stats(self, items: list[tuple[str, str]]) -> Page:
        cells = "".join(f"<li><b>{html.escape(v)}</b><span>{html.escape(k)}</span></li>" for k, v in items)
        self._parts.append(f'<ul class="stats">{cells}</ul>')
        return self

    def table(self, headers: list[str], rows: list[list[str]]) -> Page:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        self._parts.append(f'<table class="plain"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
        return self

    def chart(self, kind: str, spec: dict[str, Any]) -> Page:
        """A chart: ``kind`` is ``line`` or ``bars`` (see charts.js for the spec)."""
        self._specs += 1
        sid = f"chart-spec-{self._specs}"
        data = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
        self._parts.append(
            f'<div class="chart" data-chart="{kind}" data-spec="{sid}"></div>'
            f'<script type="application/json" id="{sid}">{data}</script>'
        )
        return self

    def html(self) -> str:
        self._close()
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_asset('report.css')}</style></head><body>"
            f"<header><h1>{html.escape(self.title)}</h1><p>{html.escape(self.subtitle)}</p></header><main>"
            + "".join(self._parts)
            + "</main><script>"
            + _asset("charts.js").replace("</", "<\\/")
            + "</script>"
            "<script>window.addEventListener('DOMContentLoaded', function () { CHCharts.renderAll(); });</script>"
            "</body></html>\n"
        )


# ---------------------------------------------------------------- data
@dataclass
class Collected:
    """Per-block figures of a chain, ready for charts (floats: display only)."""

    markets: list[Any]
    times: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    mark: dict[int, list[float]] = field(default_factory=dict)
    oracle: dict[int, list[float]] = field(default_factory=dict)
    open_interest: dict[int, list[float]] = field(default_factory=dict)
    fund: list[float] = field(default_factory=list)
    markers: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    fund_markers: list[dict[str, Any]] = field(default_factory=list)
    waterfall_blocks: list[ExplainBlock] = field(default_factory=list)
    involved: list[bytes] = field(default_factory=list)
    equity: dict[bytes, list[tuple[int, float]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    height: int = 0
    policy: str = ""


def _px(m: Any, units: int) -> float:
    return units / 10 ** (6 - m.sz_decimals)


def _base(m: Any, lots: int) -> float:
    return lots / 10**m.sz_decimals


def collect(log: str, names: dict[bytes, str]) -> Collected:
    """Replay ``log`` (twice when accounts were involved: the second pass samples their equity)."""
    from clearinghouse.spec.state.keys import CHAIN_KEY
    from clearinghouse.tools.accounts_view import account_view
    from clearinghouse.tools.exports import Source
    from tx.logfile import scan_log

    total = max(scan_log(log).frames - 1, 1)
    stride = max(1, -(-total // MAX_POINTS))
    involved: dict[bytes, int] = {}
    with Source.open(log) as src:
        c = Collected(markets=src.markets)
        c.policy = src.view().get(CHAIN_KEY).policy
        for m in src.markets:
            c.mark[m.index], c.oracle[m.index], c.open_interest[m.index] = [], [], []
            c.markers[m.index] = []
        for block in src.blocks():
            hot = _scan_waterfall(c, block, involved, names)
            if hot:
                c.waterfall_blocks.append(ExplainBlock(height=block.height, time_ms=block.time_ms, events=block.events))
            if block.height % stride and not hot and block.height != total:
                continue
            view = src.view()
            c.times.append(block.time_ms or 0)
            c.heights.append(block.height)
            for m in src.markets:
                ms = view.get(market_state_key(m.index))
                c.mark[m.index].append(_px(m, ms.mark_price))
                c.oracle[m.index].append(_px(m, ms.oracle_price))
                c.open_interest[m.index].append(_base(m, ms.open_interest))
            c.fund.append(account_view(view, INSURANCE_FUND, with_adl=False).account_value / 1e6)
        c.height = src.height
    ranked = sorted(involved, key=lambda a: (involved[a], a))
    c.involved = [a for a in ranked if a != INSURANCE_FUND][: MAX_ACCOUNTS - 1] + (
        [INSURANCE_FUND] if INSURANCE_FUND in involved else []
    )
    if c.involved:
        with Source.open(log) as src:
            sampled = set(c.heights)
            for block in src.blocks():
                if block.height not in sampled:
                    continue
                view = src.view()
                for a in c.involved:
                    c.equity.setdefault(a, []).append(
                        (block.height, account_view(view, a, with_adl=False).account_value / 1e6)
                    )
    return c


def _scan_waterfall(c: Collected, block: Any, involved: dict[bytes, int], names: dict[bytes, str]) -> bool:
    hot = False
    t = block.time_ms or 0
    for ev in block.events:
        is_liq_fill = isinstance(ev, Fill) and ev.liquidation
        if is_liq_fill or isinstance(ev, PositionTransfer):
            # A liquidation order's fill through the book, or a backstop / ADL / deficit-cover transfer.
            m = c.markets[ev.market]
            if is_liq_fill:
                kind, what, pair = "liquidation", "fill", (bytes(ev.taker), bytes(ev.maker))
            else:
                kind = "backstop" if ev.reason == "backstop" else "adl"
                what, pair = "transfer", (bytes(ev.closing), bytes(ev.counterparty))
            who = pair[0]
            label = (
                f"height {block.height}: {kind} {what} {_base(m, ev.size):g} {m.name} at {_px(m, ev.price):,.6g}, "
                f"{_who(pair[0], names)} / {_who(pair[1], names)}"
            )
            c.markers[ev.market].append(
                {"x": t, "h": block.height, "y": _px(m, ev.price), "kind": kind, "label": label}
            )
            counter = f"{kind}_{what}s"  # liquidation_fills, backstop_transfers, adl_transfers
            c.counts[counter] = c.counts.get(counter, 0) + 1
            involved.setdefault(who, 0 if kind == "liquidation" else 1)
            hot = True
        elif isinstance(ev, WATERFALL_TYPES):
            hot = True
            label = type(ev).__name__  # the count's label in the report, not a dispatch
            c.counts[label] = c.counts.get(label, 0) + 1
            if isinstance(ev, (LiquidationTriggered, Backstop)):
                involved[bytes(ev.account)] = 0
            elif isinstance(ev, AdlStep):
                involved.setdefault(bytes(ev.counterparty), 1)
                involved.setdefault(bytes(ev.underwater), 0)
            elif isinstance(ev, DeficitCover):
                involved.setdefault(bytes(ev.counterparty), 1)
            elif isinstance(ev, InsuranceCover) and ev.paid:
                c.fund_markers.append(
                    {
                        "x": t,
                        "h": block.height,
                        "y": None,
                        "kind": "cover",
                        "label": f"height {block.height}: the fund paid {ev.paid / 1e6:,.6g} USDC of {_who(bytes(ev.account), names)}'s deficit",
                    }
                )
                involved.setdefault(bytes(ev.account), 0)
    return hot


def _who(addr: bytes, names: dict[bytes, str]) -> str:
    from tx.signing import checksum_address

    n = names.get(addr)
    if n:
        return n
    text = checksum_address(addr)
    return text[:8] + "…" + text[-4:]


# ---------------------------------------------------------------- chart specs
def by_height(c: Collected) -> bool:
    """Plot against block height when block times are very uneven (an hour of nothing, then a crash)."""
    gaps = sorted(b - a for a, b in zip(c.times, c.times[1:]) if b > a)
    return bool(gaps) and gaps[-1] > 20 * gaps[len(gaps) // 2]


def _xs(c: Collected) -> list[int]:
    return c.heights if by_height(c) else c.times


def _axis(c: Collected) -> dict[str, Any]:
    return {"xType": "number", "xLabel": "block height"} if by_height(c) else {"xType": "time"}


def _markers(c: Collected, markers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    key = "h" if by_height(c) else "x"
    return [{"x": mk[key], "y": mk["y"], "kind": mk["kind"], "label": mk["label"]} for mk in markers]


def price_chart(c: Collected, market: int) -> dict[str, Any]:
    m = c.markets[market]
    xs = _xs(c)
    return {
        "title": f"{m.name}: mark and oracle (USDC), with liquidation fills and backstop / ADL transfers",
        "yLabel": "USDC",
        **_axis(c),
        "series": [
            {"name": "mark", "points": list(zip(xs, c.mark[market])), "color": "#1f77b4", "step": True},
            {
                "name": "oracle",
                "points": list(zip(xs, c.oracle[market])),
                "color": "#7f7f7f",
                "dash": "5,3",
                "step": True,
            },
        ],
        "markers": _markers(c, c.markers[market]),
    }


def series_chart(
    c: Collected,
    title: str,
    y_label: str,
    series: list[tuple[str, list[float]]],
    *,
    markers: list[dict[str, Any]] | None = None,
    zero_based: bool = False,
) -> dict[str, Any]:
    """A step-line chart of per-sample values (one value per sampled block) on the report's x axis."""
    xs = _xs(c)
    return {
        "title": title,
        "yLabel": y_label,
        **_axis(c),
        "zeroBased": zero_based,
        "series": [{"name": n, "points": [list(p) for p in zip(xs, vals)], "step": True} for n, vals in series],
        "markers": _markers(c, markers or []),
    }


def queue_chart(ev: Any, steps: list[Any], names: dict[bytes, str], market: Any) -> dict[str, Any]:
    closed = {bytes(s.counterparty): s for s in steps}
    bars = []
    for i, e in enumerate(ev.top):
        value = int(e.index_num) / int(e.index_den) if int(e.index_den) else 0.0
        who = bytes(e.account)
        step = closed.get(who)
        note = f"size {_base(market, abs(e.size)):g} {market.name}" + (
            f"; deleveraged {_base(market, step.size):g}" if step else ""
        )
        bars.append(
            {
                "label": f"#{i + 1} {_who(who, names)}",
                "value": round(value, 6),
                "note": note,
                "highlight": step is not None,
            }
        )
    return {
        "title": f"ADL queue in {market.name}: ranking index of the top {len(bars)} of {ev.queue_length} (highlighted: deleveraged)",
        "bars": bars,
    }


# ---------------------------------------------------------------- the report
def build_report(log: str, *, names: dict[bytes, str] | None = None, title: str | None = None) -> str:
    """The cascade report page of ``log`` as an HTML string."""
    from clearinghouse.tools.names import SYSTEM_NAMES

    names = dict(names or {})
    for a, n in SYSTEM_NAMES.items():
        names.setdefault(a, n)
    c = collect(log, names)
    legend = Legend(markets=[MarketInfo(m.index, m.name, m.sz_decimals) for m in c.markets], names=dict(names))
    page = Page(
        title or f"Cascade report: {os.path.basename(log)}",
        f"{os.path.abspath(log)} · {c.height} blocks · policy {c.policy} · generated offline by clearinghouse report",
    )
    page.section("Summary").stats(
        [
            ("blocks", f"{c.height:,}"),
            ("liquidations", str(c.counts.get("LiquidationTriggered", 0))),
            ("liquidation fills", str(c.counts.get("liquidation_fills", 0))),
            ("backstops", str(c.counts.get("Backstop", 0))),
            ("insurance covers", str(c.counts.get("InsuranceCover", 0))),
            ("ADL transfers", str(c.counts.get("adl_transfers", 0))),
            ("accounts involved", str(len(c.involved))),
        ]
    )
    if by_height(c):
        page.text(
            "Charts are drawn against block height: block times are very uneven here (hover a marker for its block).",
            muted=True,
        )
    if len(c.times) < c.height:
        page.text(
            f"{len(c.times):,} of {c.height:,} blocks sampled (every block with a waterfall event is included).",
            muted=True,
        )
    page.section("Prices: mark against oracle")
    for m in c.markets:
        page.chart("line", price_chart(c, m.index))
    page.section("Open interest")
    page.chart(
        "line",
        series_chart(
            c,
            "Open interest (base asset, one side)",
            "size",
            [(m.name, c.open_interest[m.index]) for m in c.markets],
            zero_based=True,
        ),
    )
    page.section("Insurance fund")
    page.chart(
        "line",
        series_chart(
            c,
            "Insurance fund value (USDC: cash plus any taken-over positions at mark)",
            "USDC",
            [("insurance fund", c.fund)],
            markers=c.fund_markers,
        ),
    )
    page.section("ADL queues")
    queues = [(b, e) for b in c.waterfall_blocks for e in b.events if isinstance(e, AdlQueue)]
    if not queues:
        page.text("No auto-deleveraging happened on this chain.", muted=True)
    for b, q in queues:
        m = c.markets[q.market]
        steps = [
            e
            for e in b.events
            if isinstance(e, AdlStep) and e.market == q.market and bytes(e.underwater) == bytes(q.underwater)
        ]
        page.heading(
            f"Height {b.height}: {_who(bytes(q.underwater), names)}'s {legend.unit_phrase(q.underwater_unit)} underwater "
            f"({_base(m, abs(q.underwater_size)):g} {m.name}), bankruptcy price {_px(m, q.bankruptcy_price):,.6g}, policy {q.policy}"
        )
        page.chart("bars", queue_chart(q, steps, names, m))
        if steps:
            page.table(
                ["rank", "counterparty", "size", "price", "realized PnL (USDC)"],
                [
                    [
                        str(s.rank),
                        _who(bytes(s.counterparty), names),
                        f"{_base(m, s.size):g}",
                        f"{_px(m, s.price):,.6g}",
                        f"{s.realized_pnl / 1e6:,.2f}",
                    ]
                    for s in steps
                ],
            )
    page.section("Equity of the accounts involved")
    if c.involved:
        page.chart(
            "line",
            series_chart(
                c,
                "Account value (USDC) of every account the waterfall touched",
                "USDC",
                [(_who(a, names), [v for _h, v in c.equity.get(a, [])]) for a in c.involved],
            ),
        )
    else:
        page.text("No account was liquidated or deleveraged.", muted=True)
    page.section("Incidents, explained")
    any_text = False
    for a in c.involved:
        report = explain_events(c.waterfall_blocks, a, legend)
        for inc in report["incidents"]:
            any_text = True
            page.pre(inc["text"])
    if not any_text:
        page.text("Nothing to explain: the waterfall never ran.", muted=True)
    return page.html()


def cmd_report(args: Any) -> int:
    import sys

    from clearinghouse.tools import names as N
    from clearinghouse.tools.console import EXIT_OK, CliError

    if os.path.isdir(args.log):
        raise CliError(
            f"{args.log} is a folder: report needs the log (a state database keeps only its last state)",
            error_code="NOT_A_LOG",
        )
    if not os.path.isfile(args.log):
        raise CliError(f"no such log file: {args.log}", error_code="NO_SUCH_FILE")
    try:
        from clearinghouse.tools.scenario.parse import scenario_names

        known = N.known_names(names=args.names, scenario=scenario_names(args.scenario))
    except N.UnknownName as exc:
        raise CliError(str(exc)) from None
    out = args.output
    if os.path.isdir(out):
        raise CliError(f"{out} is a folder; give a file name for -o")
    text = build_report(args.log, names=N.labels(known), title=args.title)
    tmp = out + ".partial"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(
        f"wrote {out} ({len(text.encode('utf-8')):,} bytes; open it in a browser, it needs no network)", file=sys.stderr
    )
    return EXIT_OK


def add_report_command(sub: Any) -> None:
    from clearinghouse.tools.console import cli_command
    from clearinghouse.tools.names import add_name_args

    p = sub.add_parser("report", help="a self-contained offline HTML cascade report of a log (charts and explanations)")
    p.add_argument("log", metavar="LOG", help="the log file to report on")
    p.add_argument(
        "-o", "--output", default="report.html", metavar="FILE", help="where to write the page (default: report.html)"
    )
    p.add_argument("--title", default=None, help="the page title (default: 'Cascade report: LOG')")
    add_name_args(p)
    p.set_defaults(func=cli_command(cmd_report), json=False)


__all__ = ["Page", "Collected", "collect", "by_height", "price_chart", "series_chart", "queue_chart", "build_report"]
