"""Reports of a scenario run: per-block events, final accounts and expectations, as text and JSON."""

from __future__ import annotations

import os
from typing import Any

from clearinghouse.spec import events as E
from clearinghouse.spec.waterfall import events as W
from clearinghouse.tools.scenario.expect import _lots, _price, account_state
from clearinghouse.tools.scenario.parse import _address_of
from clearinghouse.tools.scenario.run import ScenarioRun
from clearinghouse.tools.units import (
    micro_to_usdc,
)


# ---------------------------------------------------------------- reports
def _summary(run: ScenarioRun) -> dict[str, int]:
    counts = {
        "blocks": len(run.blocks),
        "txs": 0,
        "rejected": 0,
        "fills": 0,
        "transfers": 0,
        "liquidations": 0,
        "market_liquidations": 0,
        "insurance_covers": 0,
        "backstops": 0,
        "adl_queues": 0,
        "adl_steps": 0,
        "adl_fills": 0,
        "deficit_covers": 0,
        "adl_shortfalls": 0,
        "funding_payments": 0,
    }
    names: dict[type, str] = {
        W.LiquidationTriggered: "liquidations",
        W.MarketLiquidation: "market_liquidations",
        W.InsuranceCover: "insurance_covers",
        W.Backstop: "backstops",
        W.AdlQueue: "adl_queues",
        W.AdlStep: "adl_steps",
        W.DeficitCover: "deficit_covers",
        W.AdlShortfall: "adl_shortfalls",
    }
    for b in run.blocks:
        for e in b.events:
            if isinstance(e, E.Receipt):
                counts["txs"] += 1
                counts["rejected"] += 0 if e.ok else 1
            elif isinstance(e, E.Fill):
                counts["fills"] += 1
            elif isinstance(e, E.PositionTransfer):
                counts["transfers"] += 1
                if e.reason == "adl":
                    counts["adl_fills"] += 1  # key kept from when ADL closes were fills
            elif isinstance(e, E.FundingPaid) and e.amount != 0:
                counts["funding_payments"] += 1
            elif type(e) in names:
                counts[names[type(e)]] += 1
    return counts


def scenario_report(run: ScenarioRun, *, log: str | None) -> dict[str, Any]:
    """The machine-readable result of a run (``scenario run --json``)."""
    from clearinghouse.tools.explain import Legend, event_json
    from clearinghouse.tools.units import lots_to_size, units_to_price

    sc = run.scenario
    view = run.view()
    legend = Legend.from_view(view, sc.names())
    accounts = {}
    for name in [*sc.accounts, "insurance_fund", "fee_pool"]:
        accounts[name] = account_state(view, _address_of(name), sc)
    prices = {}
    from clearinghouse.spec.state.keys import market_state_key

    for m in sc.markets:
        ms = view.get(market_state_key(m.index))
        prices[m.name] = {
            "oracle": ms.oracle_price,
            "oracle_usdc": units_to_price(ms.oracle_price, m.sz_decimals),
            "mark": ms.mark_price,
            "mark_usdc": units_to_price(ms.mark_price, m.sz_decimals),
            "open_interest": ms.open_interest,
            "open_interest_base": lots_to_size(ms.open_interest, m.sz_decimals),
        }
    return {
        "scenario": sc.name,
        "file": os.path.abspath(sc.path) if os.path.exists(sc.path) else sc.path,
        "policy": sc.policy,
        "chain_id": sc.chain_id,
        "log": log,
        "height": run.producer.engine.height,
        "state_root": run.producer.engine.store.root.hex(),
        "markets": [{"index": m.index, "name": m.name, "sz_decimals": m.sz_decimals} for m in sc.markets],
        "blocks": [
            {
                "height": b.height,
                "time_ms": b.time_ms,
                "steps": b.steps,
                "notes": b.notes,
                "events": [event_json(e, legend) for e in b.events],
            }
            for b in run.blocks
        ],
        "accounts": accounts,
        "prices": prices,
        "summary": _summary(run),
        "expects": [vars(e) for e in run.expects],
        "ok": not run.failed_expects,
    }


def render_run(con: Any, run: ScenarioRun, *, log: str | None) -> None:
    """The readable report: events block by block, final accounts, summary, expectations."""
    from rich.markup import escape

    from clearinghouse.spec.constants import NO_TX
    from clearinghouse.tools.explain import Legend, event_text, iso_time

    sc = run.scenario
    view = run.view()
    legend = Legend.from_view(view, sc.names())
    con.print(f"[bold]Scenario {escape(sc.name)}[/] ({escape(sc.path)})")
    if sc.description:
        con.print(f"  {escape(sc.description)}")
    mk = ", ".join(
        f"{m.name} (lot {_lots(m, 1)}, price unit {_price(m, 1)} USDC, max {m.spec.max_leverage}x)" for m in sc.markets
    )
    con.print(
        f"  policy {sc.policy}, chain {sc.chain_id}, insurance fund {micro_to_usdc(sc.insurance_fund, grouping=True)} USDC; markets {escape(mk)}"
    )
    if log:
        con.print(f"  log {escape(log)}")
    for b in run.blocks:
        title = f"\n[bold cyan]Block {b.height}[/]  {iso_time(b.time_ms)}"
        if b.steps:
            title += f"  steps {', '.join(map(str, b.steps))}"
        con.print(title)
        for note in b.notes:
            con.print(f"  [italic]# {escape(note)}[/]")
        in_tx = True
        for e in b.events:
            is_receipt = isinstance(e, E.Receipt)
            tx_index = getattr(e, "tx_index", NO_TX)
            if in_tx and (tx_index == NO_TX or not hasattr(e, "tx_index")) and not is_receipt:
                in_tx = False
                con.print("  [dim]end of block:[/]")
            lines = event_text(e, legend)
            style = _style(e)
            indent = "  " if is_receipt or not in_tx else "    "
            for i, line in enumerate(lines):
                text = escape(line)
                con.print(f"{indent}[{style}]{text}[/]" if style and i == 0 else f"{indent}{text}")
    con.print(
        f"\n[bold]Final state[/] at height {run.producer.engine.height}, state root {run.producer.engine.store.root.hex()}"
    )
    for name in [*sc.accounts, "insurance_fund", "fee_pool"]:
        addr = _address_of(name)
        st = account_state(view, addr, sc)
        con.print(f"  [bold]{escape(legend.who_full(addr))}[/]")
        con.print(
            f"    cash {micro_to_usdc(st['cash'], grouping=True)} USDC, value {micro_to_usdc(st['value'], grouping=True)} USDC, "
            f"open orders {st['open_orders']}"
        )
        for p in st["positions"]:
            side = "long" if p["size"] > 0 else "short"
            iso = (
                f", isolated value {micro_to_usdc(p['isolated_value'], grouping=True)} USDC"
                if p["mode"] == "isolated"
                else ""
            )
            m = sc.markets[p["market"]]
            con.print(
                f"    {p['market_name']} {side} {_lots(m, abs(p['size']))} at entry {legend.entry(p['market'], p['cost'], p['size'])}, "
                f"mark {legend.price(p['market'], p['mark'])}, unrealized PnL {legend.usdc(p['unrealized_pnl'], signed=True)} USDC, "
                f"{p['leverage']}x {p['mode']}{iso}"
            )
    s = _summary(run)
    con.print(
        f"Summary: {s['blocks']} blocks, {s['txs']} transactions ({s['rejected']} rejected), {s['fills']} fills, "
        f"{s['transfers']} position transfers, "
        f"{s['liquidations']} liquidations, {s['backstops']} backstops, {s['adl_steps']} ADL steps ({s['adl_fills']} ADL transfers), "
        f"{s['deficit_covers']} deficit covers, {s['funding_payments']} funding payments"
    )
    if run.expects:
        passed = sum(1 for e in run.expects if e.ok)
        con.print(f"Expectations: {passed} passed, {len(run.expects) - passed} failed")
        for e in run.expects:
            if e.ok:
                con.print(f"  [green]ok[/]   step {e.step}: {escape(e.check)}")
            else:
                con.print(f"  [bold red]FAIL[/] step {e.step} (height {e.height}): {escape(e.message)}")


def _style(e: Any) -> str:
    if isinstance(e, E.Receipt):
        return "" if e.ok else "red"
    if isinstance(e, (W.LiquidationTriggered, W.Backstop, W.AdlQueue, W.AdlStep, W.DeficitCover, W.AdlShortfall)):
        return "bold magenta"
    if isinstance(e, (W.MarketLiquidation, W.InsuranceCover)):
        return "magenta"
    if isinstance(e, E.Fill):
        return "magenta" if e.liquidation else "green"
    if isinstance(e, E.PositionTransfer):
        return "magenta"
    return ""
