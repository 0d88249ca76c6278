"""Human and JSON reports for the CLI: replay summaries and account views.

Display code only: it may format numbers as decimals, but it never feeds
anything back into the state transition.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tx.logfile import scan_log
from tx.signing import checksum_address

from .engine import Engine, replay_log
from .keys import account_key, position_key
from .margin import cross_health
from .units import micro_to_usdc

USDC = 1_000_000


@dataclass
class ReplayResult:
    log: str
    db: str | None
    height: int
    state_root: bytes
    stats: dict[str, int]
    event_counts: Counter = field(default_factory=Counter)
    rejected_codes: Counter = field(default_factory=Counter)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def usdc(micro: int) -> str:
    """micro-USDC as a grouped decimal string (display only, exact)."""
    return micro_to_usdc(micro, grouping=True)


def replay_into_db(log_path: str, db_path: str | None, *, progress: bool = False, labels: dict[bytes, str] | None = None, after_block: Any = None) -> ReplayResult:
    """Replay ``log_path`` into an LMDB store at ``db_path`` (or memory when None).

    ``after_block(store, entry, executed)`` is called after each block (``executed``
    is None for a block skipped on resume), e.g. to write snapshots; if it has a
    ``summary()`` method, its dict is added to the result's extra fields.
    """
    from state import LmdbStore, MemoryStore

    store = LmdbStore(db_path) if db_path is not None else MemoryStore()
    try:
        engine = Engine(store)
        counts: Counter = Counter()
        codes: Counter = Counter()

        def count(entry: Any, executed: Any) -> None:
            if after_block is not None:
                after_block(store, entry, executed)
            if executed is None:
                return
            for ev in executed.events:
                name = type(ev).__name__
                counts[name] += 1
                if name == "Receipt" and not ev.ok:
                    codes[ev.code] += 1
                for key, inc in _derived_counts(ev):
                    counts[key] += inc

        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            total = max(scan_log(log_path).frames - 1, 0)
            with Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
                task = bar.add_task("blocks", total=total)

                def tick(entry: Any, executed: Any) -> None:
                    count(entry, executed)
                    bar.advance(task)

                stats = replay_log(engine, log_path, on_block=tick)
        else:
            stats = replay_log(engine, log_path, on_block=count)
        result = ReplayResult(
            log=os.path.abspath(log_path), db=os.path.abspath(db_path) if db_path else None,
            height=store.height, state_root=store.root, stats=stats, event_counts=counts, rejected_codes=codes,
        )
        result.accounts = account_rows(engine, labels or {})
        if after_block is not None and hasattr(after_block, "summary"):
            result.extra.update(after_block.summary())
        return result
    finally:
        store.close()


def _derived_counts(ev: Any) -> list[tuple[str, int]]:
    """Counters the summary reports beyond event type names."""
    name = type(ev).__name__
    out = []
    if name == "Fill":
        out.append(("fills", 1))
        if ev.kind in ("adl", "deficit_cover"):
            out.append(("adl_fills", 1))
        elif ev.kind == "liquidation":
            out.append(("liquidation_fills", 1))
    elif name == "FundingPaid" and ev.amount != 0:
        out.append(("funding_payments", 1))
    elif name == "InsuranceCover" and ev.paid > 0:
        out.append(("insurance_covers", 1))
    return out


def account_rows(engine: Engine, labels: dict[bytes, str]) -> list[dict[str, Any]]:
    """Every account in state with its cash and cross value, sorted by address."""
    from .keys import NS_ACCOUNT

    view = engine.view()
    rows = []
    for key, _raw in engine.store.scan_prefix(NS_ACCOUNT):
        addr = key[1:]
        acct = view.get(key)
        health = cross_health(view, addr)
        rows.append({
            "address": checksum_address(addr), "name": labels.get(addr, ""), "cash": acct.cash, "value": health.value,
            "positions": len(acct.open_markets), "open_orders": acct.open_orders,
        })
    return rows


def summary_dict(result: ReplayResult) -> dict[str, Any]:
    c = result.event_counts
    out = {
        "log": result.log,
        "db": result.db,
        "height": result.height,
        "state_root": result.state_root.hex(),
        "blocks": result.stats["applied"] + result.stats["skipped"],
        "blocks_applied": result.stats["applied"],
        "blocks_skipped": result.stats["skipped"],
        "txs": result.stats["txs"],
        "rejected": result.stats["rejected"],
        "rejected_by_code": dict(sorted(result.rejected_codes.items())),
        "events": dict(sorted((k, v) for k, v in c.items() if k[:1].isupper())),
        "fills": c.get("fills", 0),
        "funding_payments": c.get("funding_payments", 0),
        "liquidations": c.get("LiquidationTriggered", 0),
        "liquidation_fills": c.get("liquidation_fills", 0),
        "insurance_covers": c.get("insurance_covers", 0),
        "backstops": c.get("Backstop", 0),
        "adl_fills": c.get("adl_fills", 0),
        "accounts": result.accounts,
    }
    out.update(result.extra)
    return out


def render_summary(con: Any, s: dict[str, Any], *, title: str) -> None:
    from rich.table import Table

    con.print(f"[bold]{title}[/]: {s['log']}")
    if s.get("db"):
        con.print(f"  state db     {s['db']}")
    con.print(f"  height       {s['height']}  ({s['blocks_applied']} applied, {s['blocks_skipped']} already stored)")
    con.print(f"  state root   {s['state_root']}")
    con.print(f"  transactions {s['txs']}  ({s['rejected']} rejected: {', '.join(f'{k} x{v}' for k, v in s['rejected_by_code'].items()) or 'none'})")
    con.print(f"  fills {s['fills']}, funding payments {s['funding_payments']}")
    con.print(f"  liquidations {s['liquidations']} ({s['liquidation_fills']} fills into the book), insurance-fund covers {s['insurance_covers']}, backstops {s['backstops']}, ADL fills {s['adl_fills']}")
    table = Table(title="Accounts", show_lines=False)
    for col in ("account", "cash (USDC)", "value (USDC)", "positions", "orders"):
        table.add_column(col, justify="right" if col != "account" else "left", no_wrap=True)
    for row in s["accounts"]:
        label = f"{row['name']} ({row['address'][:10]}…)" if row.get("name") else row["address"]
        table.add_row(label, usdc(row["cash"]), usdc(row["value"]), str(row["positions"]), str(row["open_orders"]))
    con.print(table)


def account_report(store: Any, addr: bytes, *, with_proof: bool) -> dict[str, Any]:
    """The account's records, and optionally a proof checked against the stored root."""
    from state import verify_proof

    engine = Engine(store)
    view = engine.view()
    acct = view.get(account_key(addr))
    report: dict[str, Any] = {
        "address": checksum_address(addr),
        "height": store.height,
        "state_root": store.root.hex(),
        "exists": acct is not None,
        "cash": acct.cash if acct else 0,
        "open_orders": acct.open_orders if acct else 0,
        "positions": [],
    }
    if acct is not None:
        health = cross_health(view, addr)
        report.update(value=health.value, maintenance_margin=health.maintenance, initial_margin=health.initial)
        from .adl import adl_indicator

        for market in acct.open_markets:
            pos = view.get(position_key(market, addr))
            report["positions"].append({
                "market": market, "size": pos.size, "cost": pos.cost, "leverage": pos.leverage, "is_cross": pos.is_cross,
                "iso_cash": pos.iso_cash, "adl": adl_indicator(view, market, addr),
            })
    if with_proof:
        key = account_key(addr)
        value = store.get(key)
        proof = store.prove(key)
        report["proof"] = {
            "key": key.hex(),
            "value": value.hex() if value is not None else None,
            "proof": proof.to_json_obj(),
            "verified": verify_proof(store.root, key, value, proof),
            "kind": "inclusion" if value is not None else "non-inclusion",
        }
    return report


def render_account(con: Any, r: dict[str, Any]) -> None:
    con.print(f"[bold]Account {r['address']}[/] at height {r['height']}")
    if not r["exists"]:
        con.print("  (no such account in state)")
    else:
        con.print(f"  cash {usdc(r['cash'])} USDC, value {usdc(r.get('value', r['cash']))} USDC, open orders {r['open_orders']}")
        for p in r["positions"]:
            con.print(f"  market {p['market']}: size {p['size']} lots, cost {usdc(p['cost'])}, {'cross' if p['is_cross'] else 'isolated'} {p['leverage']}x")
            adl = p.get("adl")
            if adl and adl["rank"] is not None:
                lights = "■" * adl["quintile"] + "□" * (5 - adl["quintile"])
                con.print(f"    ADL queue: rank {adl['rank']} of {adl['queue_length']} (top {adl['percentile']}%), {lights} quintile {adl['quintile']}, index {adl['index_num']}/{adl['index_den']}")
            elif adl:
                con.print(f"    ADL queue: not eligible (unit value <= 0), queue length {adl['queue_length']}")
    if "proof" in r:
        pr = r["proof"]
        status = "[green]verified[/]" if pr["verified"] else "[red]FAILED[/]"
        con.print(f"  {pr['kind']} proof against root {r['state_root']}: {status}")
        con.print(f"  key {pr['key']}")
        con.print(f"  value {pr['value']}")
        con.print(f"  proof {pr['proof']}")
