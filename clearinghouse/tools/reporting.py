"""Human and JSON reports for the CLI: replay summaries and account views.

Display code only: it may format numbers as decimals, but it never feeds
anything back into the state transition.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from clearinghouse.chain.engine import Engine, replay_log
from clearinghouse.chain.recovery import DEFAULT_WORKERS
from clearinghouse.spec.events import Fill, FundingPaid, PositionTransfer, Receipt
from clearinghouse.spec.state.keys import account_key, key_account, position_key
from clearinghouse.spec.trading.margin import cross_health
from clearinghouse.spec.waterfall.events import InsuranceCover
from clearinghouse.tools.units import micro_to_usdc
from tx.logfile import scan_log
from tx.signing import checksum_address


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


COMMIT_EVERY = 64
"""Blocks per durable LMDB commit while replaying (protocol §8.5, group commits)."""

COMMIT_MS = 1000
"""Longest wall time between durable LMDB commits while replaying."""

COMPACT_ABOVE = 1.5
"""``replay`` ends with a packing copy of the LMDB file when it is this many times its live pages."""

COMMIT_MAX_WRITES = 20_000
"""Data and tree-node writes after which a group is committed early (bounds its heap memory)."""


def replay_into_db(
    log_path: str,
    db_path: str | None,
    *,
    progress: bool = False,
    labels: dict[bytes, str] | None = None,
    after_block: Any = None,
    recover_workers: int = DEFAULT_WORKERS,
    commit_every: int = COMMIT_EVERY,
    commit_ms: int = COMMIT_MS,
    keep_events: bool = True,
) -> ReplayResult:
    """Replay ``log_path`` into an LMDB store at ``db_path`` (or memory when None).

    ``after_block(store, entry, executed)`` is called after each block (``executed``
    is None for a block skipped on resume), e.g. to write snapshots; if it has a
    ``summary()`` method, its dict is added to the result's extra fields.
    Signatures are recovered ahead on ``recover_workers`` processes; LMDB commits
    durably every ``commit_every`` blocks or ``commit_ms`` milliseconds (protocol §8.5).
    """
    from state import LmdbStore, MemoryStore

    store = LmdbStore(db_path) if db_path is not None else MemoryStore()
    engine: Engine | None = None
    try:
        engine = Engine(store, keep_events=keep_events)
        counts: Counter = Counter()
        codes: Counter = Counter()
        lmdb_store = store if isinstance(store, LmdbStore) else None
        grouped = lmdb_store if lmdb_store is not None and commit_every > 1 else None
        if grouped is not None:
            grouped.group_commit(commit_every, max_writes=COMMIT_MAX_WRITES)
        last_flush = time.monotonic()

        def count(entry: Any, executed: Any) -> None:
            nonlocal last_flush
            pending = grouped.pending_blocks if grouped is not None else 0
            if grouped is not None and pending and (time.monotonic() - last_flush) * 1000 >= commit_ms:
                grouped.flush()  # a wall-clock bound on what a crash can lose (not consensus)
                pending = 0
            if not pending:
                last_flush = time.monotonic()
            if after_block is not None:
                after_block(store, entry, executed)
            if executed is None:
                return
            for ev in executed.events:
                name = type(ev).__name__
                counts[name] += 1
                if isinstance(ev, Receipt) and not ev.ok:
                    codes[ev.code] += 1
                for key, inc in _derived_counts(ev):
                    counts[key] += inc

        if progress:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            total = max(scan_log(log_path).frames - 1, 0)
            with Progress(
                TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
            ) as bar:
                task = bar.add_task("blocks", total=total)

                def tick(entry: Any, executed: Any) -> None:
                    count(entry, executed)
                    bar.advance(task)

                stats = replay_log(engine, log_path, on_block=tick, recover_workers=recover_workers)
        else:
            stats = replay_log(engine, log_path, on_block=count, recover_workers=recover_workers)
        if lmdb_store is not None:
            lmdb_store.flush()
            total, used = lmdb_store.page_usage()
            if stats["applied"] and total > COMPACT_ABOVE * used:
                lmdb_store.compact()  # drop the free pages copy-on-write left (the database is the live state)
        result = ReplayResult(
            log=os.path.abspath(log_path),
            db=os.path.abspath(db_path) if db_path else None,
            height=store.height,
            state_root=store.root,
            stats=stats,
            event_counts=counts,
            rejected_codes=codes,
        )
        result.accounts = account_rows(engine, labels or {})
        if after_block is not None and hasattr(after_block, "summary"):
            result.extra.update(after_block.summary())
        return result
    finally:
        try:
            store.close()  # commits an open group: every block in it was checked
        finally:
            if engine is not None:
                engine.close_events()


def _derived_counts(ev: Any) -> list[tuple[str, int]]:
    """Counters the summary reports beyond event type names."""
    out = []
    if isinstance(ev, Fill):
        out.append(("fills", 1))
        if ev.liquidation:
            out.append(("liquidation_fills", 1))
    elif isinstance(ev, PositionTransfer):
        out.append(("transfers", 1))
        if ev.reason in ("adl", "deficit_cover"):
            # Key kept from when these were fills: ADL and deficit-cover closes (protocol §10.9).
            out.append(("adl_fills", 1))
    elif isinstance(ev, FundingPaid) and ev.amount != 0:
        out.append(("funding_payments", 1))
    elif isinstance(ev, InsuranceCover) and ev.paid > 0:
        out.append(("insurance_covers", 1))
    return out


def account_rows(engine: Engine, labels: dict[bytes, str]) -> list[dict[str, Any]]:
    """Every account in state with its cash and cross value, sorted by address."""
    from clearinghouse.spec.state.keys import NS_ACCOUNT
    from clearinghouse.tools.names import SYSTEM_NAMES

    view = engine.view()
    rows = []
    for key, _raw in engine.store.scan_prefix(NS_ACCOUNT):
        addr = key_account(key)
        acct = view.get(key)
        health = cross_health(view, addr)
        rows.append(
            {
                "address": checksum_address(addr),
                "name": labels.get(addr, "") or SYSTEM_NAMES.get(addr, ""),
                "cash": acct.cash,
                "value": health.value,
                "cash_usdc": micro_to_usdc(acct.cash),
                "value_usdc": micro_to_usdc(health.value),
                "positions": len(acct.open_markets),
                "open_orders": acct.open_orders,
            }
        )
    return rows


def summary_dict(result: ReplayResult, *, top: int | None = None) -> dict[str, Any]:
    """The summary of a replay; ``top`` keeps the N most valuable accounts (all when None)."""
    c = result.event_counts
    accounts = result.accounts
    if top is not None:
        accounts = sorted(accounts, key=lambda r: (-r["value"], r["address"]))[:top]
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
        "transfers": c.get("transfers", 0),
        "funding_payments": c.get("funding_payments", 0),
        "liquidations": c.get("LiquidationTriggered", 0),
        "liquidation_fills": c.get("liquidation_fills", 0),
        "insurance_covers": c.get("insurance_covers", 0),
        "backstops": c.get("Backstop", 0),
        "adl_fills": c.get("adl_fills", 0),
        "account_count": len(result.accounts),
        "accounts": accounts,
    }
    out.update(result.extra)
    return out


def render_summary(
    con: Any, s: dict[str, Any], *, title: str, top: int | None = 20, wide: bool = False, quiet: bool = False
) -> None:
    """The summary in words and one accounts table (the ``top`` most valuable; None or 0 for all)."""
    from rich.markup import escape

    from clearinghouse.tools.console import Column, render_table

    con.print(f"[bold]{title}[/]: {escape(s['log'])}")
    if s.get("db"):
        con.print(f"  state db     {escape(s['db'])}")
    con.print(f"  height       {s['height']}  ({s['blocks_applied']} applied, {s['blocks_skipped']} already stored)")
    con.print(f"  state root   {s['state_root']}")
    con.print(
        f"  transactions {s['txs']:,}  ({s['rejected']:,} rejected: {', '.join(f'{k} x{v}' for k, v in s['rejected_by_code'].items()) or 'none'})"
    )
    con.print(
        f"  fills {s['fills']:,} (through the book), position transfers {s.get('transfers', 0):,} (backstop/ADL), "
        f"funding payments {s['funding_payments']:,}"
    )
    con.print(
        f"  liquidations {s['liquidations']} ({s['liquidation_fills']} fills into the book), insurance-fund covers {s['insurance_covers']}, backstops {s['backstops']}, ADL closes {s['adl_fills']}"
    )
    if quiet:
        return
    accounts = sorted(s["accounts"], key=lambda r: (-r["value"], r["address"]))
    shown = accounts[:top] if top else accounts
    columns = [
        Column("account", justify="left"),
        Column("address", justify="left", priority=3),
        Column("cash (USDC)"),
        Column("value (USDC)"),
        Column("positions", priority=2),
        Column("orders", priority=1),
    ]
    rows = [
        [
            row.get("name") or row["address"],
            row["address"] if row.get("name") else "",
            usdc(row["cash"]),
            usdc(row["value"]),
            str(row["positions"]),
            str(row["open_orders"]),
        ]
        for row in shown
    ]
    render_table(
        con,
        columns,
        rows,
        title=f"Accounts by value ({len(shown)} of {s.get('account_count', len(accounts))})",
        wide=wide,
    )
    rest = s.get("account_count", len(accounts)) - len(shown)
    if rest > 0:
        con.print(f"  ... and {rest:,} more accounts (--top N to show more, --top 0 for all, --json for everything)")


def account_report(store: Any, addr: bytes, *, with_proof: bool, name: str | None = None) -> dict[str, Any]:
    """The account as a trader sees it, and optionally proofs checked against the stored root.

    Integers are the state's units (micro-USDC, lots, price units); every amount has a
    ``_usdc`` companion, every size a ``_base`` one, every price a ``_usdc`` one (decimal strings).
    """
    from clearinghouse.tools.accounts_view import (
        account_view,
        base_str,
        frac_str,
        px_str,
        usdc_str,
    )
    from state import verify_proof

    engine = Engine(store)
    view = engine.view()
    av = account_view(view, addr)
    report: dict[str, Any] = {
        "address": checksum_address(addr),
        "name": name,
        "height": store.height,
        "state_root": store.root.hex(),
        "exists": av.exists,
        "cash": av.cash,
        "cash_usdc": usdc_str(av.cash),
        "open_orders": av.open_orders,
        "positions": [],
    }
    if av.exists:
        for key, value in (
            ("value", av.cross_value),
            ("maintenance_margin", av.cross_maintenance),
            ("initial_margin", av.cross_initial),
            ("account_value", av.account_value),
            ("margin_used", av.margin_used),
            ("withdrawable", av.withdrawable),
            ("total_notional", av.total_notional),
        ):
            report[key] = value
            report[key + "_usdc"] = usdc_str(value)
        for p in av.positions:
            d = p.market.sz_decimals
            report["positions"].append(
                {
                    "market": p.market.index,
                    "coin": p.market.name,
                    "size": p.size,
                    "size_base": base_str(p.size, d),
                    "cost": p.cost,
                    "cost_usdc": usdc_str(p.cost),
                    "leverage": p.leverage,
                    "is_cross": p.is_cross,
                    "margin_mode": "cross" if p.is_cross else "isolated",
                    "iso_cash": p.iso_cash,
                    "iso_cash_usdc": usdc_str(p.iso_cash),
                    "mark_price": p.mark,
                    "mark_price_usdc": px_str(p.mark, d),
                    "entry_price_usdc": px_str(p.entry_px, d, extra=2),
                    "position_value": p.position_value,
                    "position_value_usdc": usdc_str(p.position_value),
                    "unrealized_pnl": p.unrealized_pnl,
                    "unrealized_pnl_usdc": usdc_str(p.unrealized_pnl),
                    "return_on_equity": frac_str(p.return_on_equity, 6),
                    "liquidation_price_usdc": px_str(p.liquidation_px, d, extra=2),
                    "margin_used": p.margin_used,
                    "margin_used_usdc": usdc_str(p.margin_used),
                    "maintenance_margin": p.maintenance,
                    "maintenance_margin_usdc": usdc_str(p.maintenance),
                    "adl": p.adl,
                }
            )
    if with_proof:

        def proof_of(key: bytes) -> dict[str, Any]:
            value = store.get(key)
            proof = store.prove(key)
            return {
                "key": key.hex(),
                "value": value.hex() if value is not None else None,
                "proof": proof.to_json_obj(),
                "verified": verify_proof(store.root, key, value, proof),
                "kind": "inclusion" if value is not None else "non-inclusion",
            }

        report["proof"] = proof_of(account_key(addr))
        report["position_proofs"] = [
            dict(proof_of(position_key(p["market"], addr)), market=p["market"], coin=p["coin"])
            for p in report["positions"]
        ]
    return report


def render_account(con: Any, r: dict[str, Any], *, wide: bool = False) -> None:
    import json

    from rich.markup import escape

    from clearinghouse.tools.console import Column, render_table

    label = f"{r['name']} ({r['address']})" if r.get("name") else r["address"]
    con.print(f"[bold]Account {escape(label)}[/] at height {r['height']}")
    if not r["exists"]:
        con.print("  (no such account in state)")
    else:
        con.print(
            f"  account value {usdc(r['account_value'])} USDC (cross {usdc(r['value'])}), cash {usdc(r['cash'])} USDC"
        )
        con.print(
            f"  margin used {usdc(r['margin_used'])} USDC, cross maintenance {usdc(r['maintenance_margin'])} USDC, "
            f"withdrawable {usdc(r['withdrawable'])} USDC, open orders {r['open_orders']}"
        )
        if r["positions"]:
            columns = [
                Column("coin", justify="left"),
                Column("size"),
                Column("entry"),
                Column("mark", priority=2),
                Column("uPnL (USDC)"),
                Column("liq. price"),
                Column("margin (USDC)", priority=1),
                Column("mode", justify="left", priority=3),
                Column("ADL rank", priority=2),
            ]
            rows = []
            for p in r["positions"]:
                adl = p.get("adl")
                rank = (
                    "-"
                    if not adl
                    else (
                        f"{adl['rank']}/{adl['queue_length']} (q{adl['quintile']})"
                        if adl["rank"] is not None
                        else f"not eligible/{adl['queue_length']}"
                    )
                )
                mode = f"{p['margin_mode']} {p['leverage']}x"
                rows.append(
                    [
                        p["coin"],
                        p["size_base"],
                        p["entry_price_usdc"] or "-",
                        p["mark_price_usdc"],
                        usdc(p["unrealized_pnl"]),
                        p["liquidation_price_usdc"] or "none",
                        usdc(p["margin_used"]),
                        mode,
                        rank,
                    ]
                )
            render_table(con, columns, rows, title="Positions", wide=wide)
    if "proof" in r:
        for pr in [r["proof"], *r.get("position_proofs", [])]:
            what = f"position {pr['coin']}" if "coin" in pr else "account"
            status = "[green]verified[/]" if pr["verified"] else "[red]FAILED[/]"
            con.print(f"  {what}: {pr['kind']} proof against root {r['state_root']}: {status}")
        con.print(escape(json.dumps({"account": r["proof"], "positions": r.get("position_proofs", [])}, indent=2)))
