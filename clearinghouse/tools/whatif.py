"""``clearinghouse whatif``: the same transactions under other ADL policies (the ADL policy lab).

::

    clearinghouse whatif LOG [--policies hyperliquid,bitmex,seed] [--gap-ms 5000] [--json] [--html OUT] [--timing]

For each policy (any name in ``policies.POLICIES``; default all of them):

* the log's own policy is **verified** as ``clearinghouse verify`` does (every
  header root checked; a mismatch is exit 1);
* any other policy is a **counterfactual**: the genesis is decoded, its policy
  replaced and re-encoded, and the log's blocks are re-executed from their
  transactions at their heights and times, without header checks (their roots
  are not the log's). Signatures stay valid: they cover the chain id, not the
  genesis;
* and once per distinct set of liquidation switches (``baseline_key``), the same
  transactions with step 50 (ADL) disabled, through the non-consensus
  ``end_of_block.tool_hook``: the "without ADL" side of the haircut H.

Cost: one verify, plus one replay per other policy and one ADL-disabled replay
per distinct baseline key (``hyperliquid`` and ``bitmex`` share one), each
started from the verified run's state just before the first block where a
policy switch could matter (``Fork``; ``--full`` replays from genesis). The
observation adds a pass over the margin units before step 50 in blocks where
the waterfall is not quiet (step 50 makes the same pass) and an equity pass at
blocks with ADL. Figures: ``tools/adl_metrics.py``, defined in docs/adl-lab.md.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from clearinghouse.chain.engine import Engine, Executed, iter_log
from clearinghouse.spec.constants import CROSS
from clearinghouse.spec.end_of_block import ToolHook, tool_hook
from clearinghouse.spec.state.access import market_positions
from clearinghouse.spec.state.keys import (
    CHAIN_KEY,
    NS_ACCOUNT,
    NS_LIQ_REF,
    SYSTEM_ACCOUNTS,
    key_account,
    market_state_key,
)
from clearinghouse.spec.state.records import Chain
from clearinghouse.spec.waterfall.adl import units_to_deleverage
from clearinghouse.spec.waterfall.events import AdlStep, Clawback, DeficitCover, Haircut, WaterfallSkipped
from clearinghouse.spec.waterfall.insurance_fund import fund_value
from clearinghouse.spec.waterfall.policies import POLICIES, Policy
from clearinghouse.spec.waterfall.units import Unit, unit_health
from clearinghouse.tools.adl_metrics import BlockObs, Fill, cell, policy_figures
from state import MemoryStore
from tx.encoding import encode, genesis_hash
from tx.messages import Block, Genesis, Header

ADL_ONLY_FIELDS = ("name", "ranking", "deficit_cover", "adl")
"""Policy switches that only step 50 reads: policies that differ only in these share one
ADL-disabled baseline. A new switch is assumed to matter before step 50 unless listed here."""


def baseline_key(policy: Policy) -> tuple[Any, ...]:
    return tuple((f.name, getattr(policy, f.name)) for f in dataclasses.fields(policy) if f.name not in ADL_ONLY_FIELDS)


class WhatifError(ValueError):
    code = "BAD_INPUT"

    def __init__(self, message: str, code: str = "BAD_INPUT") -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- observation
def account_equities(store: Any, ws: Any) -> dict[bytes, int]:
    """Every non-system account in committed state: cross value plus its isolated units' values, at the marks.

    All accounts, not only those holding a position: ADL (or a different path) may have closed
    an account's positions in one replay and not in the other, and its cash still counts.
    """
    chain = ws.get(CHAIN_KEY)
    isolated: dict[bytes, list[int]] = {}
    for m in range(chain.market_count):
        for owner, pos in market_positions(ws, m):
            if not pos.is_cross:
                isolated.setdefault(owner, []).append(m)
    system = set(SYSTEM_ACCOUNTS)
    out = {}
    for key, _raw in store.scan_prefix(NS_ACCOUNT):
        a = key_account(key)
        if a in system:
            continue
        eq = unit_health(ws, Unit(a, CROSS)).value
        for m in isolated.get(a, ()):
            eq += unit_health(ws, Unit(a, m)).value
        out[a] = eq
    return out


def below_zero(ws: Any) -> int:
    """Σ max(0, -value) over the units step 50 visits (the fund included)."""
    return sum(max(0, -unit_health(ws, u).value) for u in units_to_deleverage(ws))


def waterfall_quiet(ws: Any) -> bool:
    """No liquidation reference exists (none this block, none pending) and the fund is not below zero.

    Then no unit is below zero before step 50 (a unit below zero with positions is below
    maintenance, so step 40 liquidated it and wrote its reference; a position-less unit below
    zero keeps its reference), so D = 0 without a pass over the units, and no policy switch
    has been read so far in this block.
    """
    return ws.index.first(NS_LIQ_REF) is None and fund_value(ws) >= 0


@dataclasses.dataclass
class Fork:
    """Committed state at ``height``, the last block before any policy switch was read (see ``whatif``)."""

    height: int
    records: list[tuple[bytes, bytes]]
    header_hash: bytes
    fund_path: list[list[int]]

    def store_for(self, genesis: Genesis) -> MemoryStore:
        """The same state under ``genesis`` (another policy): only the chain record differs."""
        chain = msgspec.msgpack.decode(dict(self.records)[CHAIN_KEY], type=Chain)
        chain = msgspec.structs.replace(chain, policy=genesis.policy, genesis_hash=genesis_hash(genesis))
        records = [(k, encode(chain) if k == CHAIN_KEY else v) for k, v in self.records]
        return MemoryStore.from_records(self.height, records, {"header_hash": self.header_hash})


class Observer:
    """Collects a ``BlockObs`` per block of one replay."""

    def __init__(self, snapshot_heights: set[int] | None, store: Any = None) -> None:
        self.blocks: list[BlockObs] = []
        self.fund_path: list[list[int]] = []
        self.equities: dict[int, dict[bytes, int]] = {}
        self.snapshot_heights = snapshot_heights
        """Baselines: heights whose equities are wanted. Policy runs: None (every ADL block)."""
        self._pending: BlockObs | None = None
        self.capture_store = store
        """Set on the verified run: the committed state before the first non-quiet block becomes ``fork``."""
        self.fork: Fork | None = None
        self.adl_fork: Fork | None = None
        """The state before the first block whose step 50 finds a unit below zero: policies with the
        verified one's liquidation switches (same ``baseline_key``) are identical up to there."""
        self.fork_unsafe = False

    def before_adl(self, ws: Any, time_ms: int) -> None:
        chain = ws.get(CHAIN_KEY)
        if waterfall_quiet(ws):
            self._pending = BlockObs(height=chain.height, time_ms=time_ms, deficit=0, fund_before_adl=fund_value(ws))
            return
        if self.capture_store is not None and self.fork is None:
            self.fork = self._capture()
        deficit = below_zero(ws)
        if deficit and self.capture_store is not None and self.adl_fork is None:
            self.adl_fork = self._capture()
        self._pending = BlockObs(height=chain.height, time_ms=time_ms, deficit=deficit, fund_before_adl=fund_value(ws))

    def _capture(self) -> Fork:
        # The store still holds the previous block's state (this block is not committed yet).
        store = self.capture_store
        return Fork(
            store.height,
            list(store.iter_all()),
            store.get_meta("header_hash") or b"",
            [list(p) for p in self.fund_path],
        )

    def after_block(self, engine: Engine, executed: Executed) -> None:
        obs = (
            self._pending
            if self._pending is not None and self._pending.height == executed.height
            else BlockObs(executed.height, executed.time_ms)
        )
        self._pending = None
        view = engine.view()
        marks: dict[int, int] = {}

        def mark(m: int) -> int:
            if m not in marks:
                marks[m] = view.get(market_state_key(m)).mark_price
            return marks[m]

        for e in executed.events:
            if isinstance(e, WaterfallSkipped) and self.capture_store is not None and self.fork is None:
                self.fork_unsafe = True  # a rolled-back liquidation leaves no reference, yet it read the policy
            if isinstance(e, AdlStep):
                obs.fills.append(Fill(e.market, e.counterparty, e.size, e.price, mark(e.market)))
            elif isinstance(e, DeficitCover):
                obs.fills.append(Fill(e.market, e.counterparty, e.size, e.reference_price, mark(e.market)))
                if e.covered:
                    obs.charges.append((e.counterparty, e.covered))
            elif isinstance(e, (Haircut, Clawback)):
                # Cash taken from a winner without a fill: the fund's deficit haircut (tag 49) and the
                # clawback policy's share (tag 50).
                obs.charges.append((e.account, e.amount))
        obs.fund_after = fund_value(view)
        if not self.fund_path or self.fund_path[-1][1] != obs.fund_after:
            self.fund_path.append([obs.height, obs.fund_after])
        if obs.has_adl or obs.deficit:
            obs.bad_debt_after = below_zero(view)
        wanted = obs.has_adl if self.snapshot_heights is None else obs.height in self.snapshot_heights
        if wanted:
            obs.equities = account_equities(engine.store, view)
            self.equities[obs.height] = obs.equities
        if obs.has_adl or obs.deficit:
            self.blocks.append(obs)  # only blocks that matter to the figures are kept


@dataclasses.dataclass
class Run:
    policy: str
    mode: str
    """``verified`` (the log's own policy), ``counterfactual`` or ``adl_disabled``."""
    observer: Observer
    final_root: str
    height: int
    seconds: float
    """Processor time of this replay (steadier than wall time on a shared machine)."""
    final_bad_debt: int


def execute_unchecked(engine: Engine, block: Block) -> Executed:
    """Execute a logged block's transactions at its height and time and commit the result with
    a header of our own (no root checks: a counterfactual)."""
    h = block.header
    executed = engine.execute(h.height, h.time_ms, list(block.txs))
    root = engine.preview_root(executed)
    header = Header(
        height=h.height,
        time_ms=h.time_ms,
        parent_hash=engine.last_header_hash(),
        tx_root=executed.tx_root,
        state_root=root,
        events_root=executed.events_root,
    )
    engine.commit(executed, header, expected_root=root)
    return executed


def replay(
    path: str,
    genesis: Genesis,
    policy: str,
    mode: str,
    snapshot_heights: set[int] | None = None,
    fork: Fork | None = None,
    signers: dict[bytes, bytes] | None = None,
) -> Run:
    """One replay of the log under ``policy`` (``mode`` as in ``Run``), from genesis or, for a
    counterfactual or baseline, from ``fork`` (the verified run's state before any policy switch mattered)."""
    start = time.process_time()
    g = genesis if mode == "verified" else msgspec.structs.replace(genesis, policy=policy)
    if fork is not None and mode != "verified":
        engine = Engine(fork.store_for(g))
    else:
        engine = Engine(MemoryStore())
        engine.init_genesis(g)
    obs = Observer(snapshot_heights, engine.store if mode == "verified" else None)
    if fork is not None and mode != "verified":
        obs.fund_path = [list(p) for p in fork.fund_path]
    # The baseline needs only equities at given heights: no pass over the units before step 50.
    with tool_hook(
        ToolHook(
            before_adl=None if mode == "adl_disabled" else obs.before_adl,
            adl_disabled=mode == "adl_disabled",
            signers=signers,
        )
    ):
        for _index, item in iter_log(path):
            if isinstance(item, Genesis) or item.block.header.height <= engine.height:
                continue
            executed = engine.apply_logged(item) if mode == "verified" else execute_unchecked(engine, item.block)
            obs.after_block(engine, executed)
    final_bad_debt = below_zero(engine.view()) if engine.height > 0 else 0
    return Run(
        policy=policy,
        mode=mode,
        observer=obs,
        final_root=engine.store.root.hex(),
        height=engine.height,
        seconds=time.process_time() - start,
        final_bad_debt=final_bad_debt,
    )


def read_genesis(path: str) -> Genesis:
    for _index, item in iter_log(path):
        if isinstance(item, Genesis):
            return item
        break
    raise WhatifError(f"{path} holds no genesis: there is no chain to replay", "NO_GENESIS")


def parse_policies(text: str | None) -> list[str]:
    if text is None:
        return sorted(POLICIES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise WhatifError("--policies names no policy", "UNKNOWN_POLICY")
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise WhatifError(
            f"unknown polic{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; known: {', '.join(sorted(POLICIES))}",
            "UNKNOWN_POLICY",
        )
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


def whatif(
    path: str,
    policies: list[str],
    gap_ms: int = 5_000,
    *,
    full: bool = False,
    on_replay: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay ``path`` under each policy and its ADL-disabled baseline; the figures per wave and in total.

    The log's own policy is replayed first and verified. Policies differ only in the
    liquidation and ADL steps (protocol §12.2), which read the policy only for a unit that is
    liquidated or below zero; so every replay is the same as the verified one up to the first
    block where that happens, except for the chain record (policy, genesis hash). Unless
    ``full``, the other replays start from the verified run's state just before that block
    (``Fork``) with the chain record rewritten: the same result as a replay from genesis (a
    test compares them), for the cost of the blocks after the fork.
    """
    genesis = read_genesis(path)
    runs: dict[str, Run] = {}
    say = on_replay or (lambda _text: None)
    say(f"verifying under {genesis.policy}")
    signers: dict[bytes, bytes] = {}  # signatures recovered once, shared by every replay
    verified = replay(path, genesis, genesis.policy, "verified", signers=signers)
    fork = None if full or verified.observer.fork_unsafe else verified.observer.fork
    adl_fork = verified.observer.adl_fork if fork is not None else None
    own_key = baseline_key(POLICIES[genesis.policy]) if genesis.policy in POLICIES else None
    for p in policies:
        if p == genesis.policy:
            runs[p] = verified
        else:
            # Same liquidation switches as the log's policy: the same chain until step 50 first has work.
            start = adl_fork if adl_fork is not None and baseline_key(POLICIES[p]) == own_key else fork
            say(f"replaying under {p}" + (f" from height {start.height}" if start is not None else ""))
            runs[p] = replay(path, genesis, p, "counterfactual", fork=start, signers=signers)
    groups: dict[tuple[Any, ...], list[str]] = {}
    for p in policies:
        groups.setdefault(baseline_key(POLICIES[p]), []).append(p)
    baselines: dict[str, Run] = {}
    base_seconds: dict[str, float] = {}
    for members in groups.values():
        heights = {b.height for p in members for b in runs[p].observer.blocks if b.has_adl}
        say(f"replaying with ADL disabled ({'+'.join(members)})")
        # From the first liquidation (fork), not adl_fork: with step 50 off, liquidation references
        # are never cleared, so the state differs from the verified run's from there on.
        base = replay(path, genesis, members[0], "adl_disabled", snapshot_heights=heights, fork=fork, signers=signers)
        base_seconds["+".join(members)] = round(base.seconds, 3)
        for p in members:
            baselines[p] = base
    results = {}
    for p in policies:
        run, base = runs[p], baselines[p]
        fig = policy_figures(run.observer.blocks, base.observer.equities, gap_ms, run.final_bad_debt)
        fig.update(
            mode=run.mode,
            final_state_root=run.final_root,
            height=run.height,
            fund_path=run.observer.fund_path,
            baseline={
                "final_state_root": base.final_root,
                "bad_debt_left": base.final_bad_debt,
                "shared_with": [q for q in policies if baselines[q] is base],
            },
        )
        results[p] = fig
    timing: dict[str, Any] = {
        "runs": {p: round(runs[p].seconds, 3) for p in policies},
        "adl_disabled": base_seconds,
        "fork_height": fork.height if fork is not None else None,
        "adl_fork_height": adl_fork.height if adl_fork is not None else None,
    }
    timing["total"] = round(
        verified.seconds + sum(r.seconds for p, r in runs.items() if r is not verified) + sum(base_seconds.values()), 3
    )
    return {
        "log": os.path.abspath(path),
        "genesis_policy": genesis.policy,
        "gap_ms": gap_ms,
        "policies": policies,
        "units": "amounts in micro-USDC (integers); shares and Gini as exact fractions with a rounded decimal",
        "results": results,
        "_timing": timing,
    }


# ---------------------------------------------------------------- output
COLUMNS = (
    ("deficit", "D"),
    ("budget", "B"),
    ("haircut", "H"),
    ("overshoot", "H-B"),
    ("accounts_hit", "hit"),
    ("adl_fills", "fills"),
    ("notional_closed", "notional"),
    ("largest_haircut_share", "max share"),
    ("gini", "Gini"),
    ("fund_after", "fund after"),
    ("bad_debt_left", "bad debt"),
)


def render_text(report: dict[str, Any], out: Any, timing: bool, wide: bool = False) -> None:
    from rich.console import Console

    from clearinghouse.tools.console import Column, render_table

    con = Console(file=out, highlight=False, soft_wrap=True)
    con.print(
        f"whatif {report['log']}: genesis policy {report['genesis_policy']}; ADL waves split at gaps > {report['gap_ms']} ms; amounts in USDC"
    )
    columns = [
        Column("policy", justify="left"),
        Column("wave", justify="left"),
        Column("heights", justify="left", priority=3),
    ]
    priorities = {
        "notional_closed": 4,
        "fund_after": 5,
        "gini": 2,
        "largest_haircut_share": 2,
        "adl_fills": 3,
        "bad_debt_left": 1,
    }
    columns += [Column(title, priority=priorities.get(k, 0)) for k, title in COLUMNS]
    rows = []
    for p in report["policies"]:
        r = report["results"][p]
        for w in r["waves"]:
            rows.append(
                [p, str(w["wave"]), f"{w['first_height']}-{w['last_height']}", *[cell(k, w[k]) for k, _t in COLUMNS]]
            )
        t = r["total"]
        rows.append([p, f"all {t['waves']}", "", *[cell(k, t[k]) for k, _t in COLUMNS]])
    render_table(con, columns, rows, wide=wide)
    for p in report["policies"]:
        r = report["results"][p]
        con.print(f"{p}: {r['mode']}, final state root {r['final_state_root']}")
    if timing:
        t = report["_timing"]
        con.print(
            f"processor time (s): replays {t['runs']}; ADL-disabled {t['adl_disabled']}; total {t['total']}; "
            f"counterfactuals and baselines start after height {t['fork_height']} "
            f"(policies with the log's liquidation switches after {t['adl_fork_height']})"
        )


def add_whatif_command(sub: Any) -> None:
    p = sub.add_parser(
        "whatif",
        help="replay a log's transactions under other ADL policies and compare deficit, budget, haircut, overshoot per wave",
    )
    p.add_argument("log", metavar="LOG", help="the log to replay (its own policy is verified against the headers)")
    p.add_argument(
        "--policies",
        default=None,
        metavar="P1,P2,...",
        help=f"policies to compare (default all: {','.join(sorted(POLICIES))})",
    )
    p.add_argument(
        "--gap-ms",
        type=int,
        default=5_000,
        metavar="MS",
        help="a new ADL wave starts after a gap longer than MS between ADL blocks (default 5000)",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON (stable: no timings unless --timing)")
    p.add_argument(
        "--html", default=None, metavar="OUT", help="also write a self-contained HTML page with one chart per figure"
    )
    p.add_argument(
        "--timing",
        action="store_true",
        help="include the processor time of each replay (not stable: left out of --json otherwise)",
    )
    p.add_argument(
        "--wide", action="store_true", help="never leave out table columns (the output may be wider than the terminal)"
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="replay every policy from genesis instead of from the verified run's state before the first liquidation (same figures, slower)",
    )
    p.set_defaults(func=cmd_whatif)


def _status_printer(args: Any) -> Callable[[str], None] | None:
    """One line per replay on stderr, on a terminal only (never under --json)."""
    if args.json or not sys.stderr.isatty():
        return None
    return lambda text: print(f"whatif: {text} ...", file=sys.stderr, flush=True)


def cmd_whatif(args: Any) -> int:
    from clearinghouse.tools.console import EXIT_OK, CliError, print_json, require_file

    require_file(args.log)
    if args.gap_ms < 0:
        raise CliError("--gap-ms must be >= 0", error_code="BAD_INPUT")
    from clearinghouse.chain.engine import VerifyFailure

    try:
        policies = parse_policies(args.policies)
        report = whatif(args.log, policies, args.gap_ms, full=args.full, on_replay=_status_printer(args))
    except WhatifError as exc:
        raise CliError(str(exc), error_code=exc.code) from None
    except VerifyFailure as exc:
        raise CliError(f"the log does not verify under its own policy: {exc}", error_code="VERIFY_MISMATCH") from None
    timing = report.pop("_timing")
    if args.timing:
        report["timing"] = timing
    if args.html:
        from clearinghouse.tools.whatif_html import write_html

        write_html(report, args.html)
    if args.json:
        print_json(report)
    else:
        report["_timing"] = timing
        render_text(report, sys.stdout, args.timing, args.wide)
    return EXIT_OK
