"""The ``clearinghouse`` command: demo, replay, verify, inspect.

Every expected failure (a damaged log, a mismatching root, a bad address, a
store that cannot be opened) is printed as one line ``error: CODE: message``
and gives a non-zero exit; a traceback means a bug (set CLEARINGHOUSE_DEBUG=1
to see it). Exit codes: 0 success, 1 verification failed or bad input,
2 usage error, 3 internal error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from typing import Any

from state.errors import StateError
from tx.errors import TxError

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class CliError(Exception):
    """A user-facing failure with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.exit_code = code


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------- commands
def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import build_demo_log, demo_labels
    from .reporting import replay_into_db, render_summary, summary_dict

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, "demo.log")
    db_path = os.path.join(out, "state")
    if os.path.exists(db_path):
        shutil.rmtree(db_path)
    build_demo_log(log_path)
    result = replay_into_db(log_path, db_path, progress=not args.json and sys.stderr.isatty(), labels=demo_labels())
    summary = summary_dict(result)
    if args.json:
        _print_json(summary)
    else:
        render_summary(_console(), summary, title="Demo chain")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from .reporting import replay_into_db, render_summary, summary_dict

    _require_file(args.log)
    from .tools.segments_cli import snapshot_writer

    result = replay_into_db(args.log, args.db, progress=not args.json and sys.stderr.isatty(), after_block=snapshot_writer(args))
    summary = summary_dict(result)
    if args.json:
        _print_json(summary)
    else:
        render_summary(_console(), summary, title="Replay")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from .tools.segments_cli import check_verify_flags, cmd_verify_segments

    if check_verify_flags(args):  # --snapshots: in segments, on a process pool or Dask
        return cmd_verify_segments(args)
    from .engine import VerifyFailure
    from .reporting import replay_into_db, summary_dict

    _require_file(args.log)
    tmp = tempfile.mkdtemp(prefix="clearinghouse-verify-")
    try:
        try:
            result = replay_into_db(args.log, os.path.join(tmp, "state") if args.backend == "lmdb" else None, progress=not args.json and sys.stderr.isatty())
        except VerifyFailure as exc:
            report = {"ok": False, "log": os.path.abspath(args.log), "height": exc.height, "what": exc.what, "tx_index": exc.tx_index, "differing_keys": exc.keys, "error": str(exc)}
            if args.json:
                _print_json(report)
            else:
                con = _console(stderr=True)
                con.print(f"[bold red]verify failed[/] at height {exc.height}: {exc.message}")
                if exc.tx_index is not None:
                    con.print(f"  transaction index: {exc.tx_index}")
                for key in exc.keys[:50]:
                    con.print(f"  differing state key: {key}")
                if len(exc.keys) > 50:
                    con.print(f"  ... and {len(exc.keys) - 50} more keys")
            return EXIT_FAIL
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summary_dict(result)
    summary["ok"] = True
    if args.json:
        _print_json(summary)
    else:
        _console().print(f"[bold green]OK[/]: {summary['blocks']} blocks, height {summary['height']}, every header root reproduced; state root {summary['state_root']}")
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from .reporting import account_report, render_account

    addr = _parse_address(args.address)
    with _open_existing_store(args.db) as store:
        report = account_report(store, addr, with_proof=args.proof)
    if args.json:
        _print_json(report)
    else:
        render_account(_console(), report)
    return EXIT_OK


def _open_existing_store(path: str):
    from state import LmdbStore

    if not os.path.isdir(path):
        raise CliError(f"no state database at {path}")
    store = LmdbStore(path)
    if store.height < 0:
        store.close()
        raise CliError(f"the state database at {path} is empty")
    return store


def cmd_diff(args: argparse.Namespace) -> int:
    """Per-namespace hashes of two stores and, where they differ, the differing keys."""
    from .diffing import differing_keys, namespace_hashes

    a = _open_existing_store(args.db_a)
    try:
        b = _open_existing_store(args.db_b)
    except BaseException:
        a.close()
        raise
    try:
        ha, hb = namespace_hashes(a), namespace_hashes(b)
        names = sorted(set(ha) | set(hb))
        rows = [{"namespace": n, "a": ha.get(n), "b": hb.get(n), "same": ha.get(n) == hb.get(n)} for n in names]
        same = a.root == b.root and all(r["same"] for r in rows)
        diffs = [] if same else list(differing_keys(a, b, limit=args.limit))
        report = {"same": same, "a": {"db": args.db_a, "height": a.height, "root": a.root.hex()}, "b": {"db": args.db_b, "height": b.height, "root": b.root.hex()}, "namespaces": rows, "differences": diffs}
    finally:
        a.close()
        b.close()
    if args.json:
        _print_json(report)
    else:
        from rich.table import Table

        con = _console()
        con.print(f"A {report['a']['db']}  height {report['a']['height']}  root {report['a']['root']}")
        con.print(f"B {report['b']['db']}  height {report['b']['height']}  root {report['b']['root']}")
        table = Table(title="Namespaces")
        for col in ("namespace", "A records", "A hash", "B records", "B hash", ""):
            table.add_column(col, no_wrap=True)
        for r in rows:
            ca, hha = r["a"] or (0, "-")
            cb, hhb = r["b"] or (0, "-")
            table.add_row(r["namespace"], str(ca), hha[:16], str(cb), hhb[:16], "same" if r["same"] else "[red]DIFFERS[/]")
        con.print(table)
        for d in diffs:
            con.print(f"[bold]{d['key']}[/]\n  A: {d['a']}\n  B: {d['b']}")
        con.print("[green]identical[/]" if same else f"[red]{len(diffs)} differing key(s) shown[/]")
    return EXIT_OK if same else EXIT_FAIL


def cmd_audit(args: argparse.Namespace) -> int:
    """Check the RULEBOOK §8 invariants on a stored state."""
    from .invariants import check_all

    store = _open_existing_store(args.db)
    try:
        violations = check_all(store)
        report = {"db": args.db, "height": store.height, "state_root": store.root.hex(), "ok": not violations, "violations": violations}
    finally:
        store.close()
    if args.json:
        _print_json(report)
    else:
        con = _console()
        if violations:
            con.print(f"[bold red]{len(violations)} invariant violation(s)[/] at height {report['height']}:")
            for v in violations:
                con.print(f"  - {v}")
        else:
            con.print(f"[green]OK[/]: conservation, open interest, solvency, bookkeeping and book hold at height {report['height']} (root {report['state_root']})")
    return EXIT_OK if not violations else EXIT_FAIL


# ---------------------------------------------------------------- helpers
def _require_file(path: str) -> None:
    if not os.path.isfile(path):
        raise CliError(f"no such log file: {path}")


def _parse_address(text: str) -> bytes:
    from tx.signing import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise CliError(f"bad address {text!r}: {exc}", EXIT_USAGE) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clearinghouse", description="A replayable perpetual-futures clearinghouse.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="build the demo log, replay it into DIR/state and summarise it")
    p.add_argument("--out", default="demo-out", metavar="DIR", help="output directory (default: ./demo-out)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("replay", help="apply a log to an LMDB state directory, resuming from its height")
    p.add_argument("log")
    p.add_argument("--db", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("verify", help="replay a log into a temporary store and check every header root")
    p.add_argument("log")
    p.add_argument("--backend", choices=("memory", "lmdb"), default="memory")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("inspect", help="show an account's state, optionally with a Merkle proof")
    p.add_argument("--db", required=True, metavar="DIR")
    p.add_argument("address")
    p.add_argument("--proof", action="store_true", help="include an inclusion proof checked against the stored root")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("diff", help="compare two state databases per namespace and list differing keys")
    p.add_argument("db_a")
    p.add_argument("db_b")
    p.add_argument("--limit", type=int, default=200, help="most differing keys to list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("audit", help="check the invariants (conservation, open interest, solvency) on a state database")
    p.add_argument("--db", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit)

    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return parser


_EXTRA_COMMANDS: list = []
"""Later modules add subcommands here (scenario, explain, diff, audit)."""


def _add_scenario_commands(sub: Any) -> None:
    from .scenario import add_scenario_command

    add_scenario_command(sub)


def _add_explain_command(sub: Any) -> None:
    from .explain import add_explain_command

    add_explain_command(sub)


def _add_segment_commands(sub: Any) -> None:
    from .tools.segments_cli import add_segment_commands

    add_segment_commands(sub)  # `snapshot`, and the snapshot/segment flags of `replay` and `verify`


_EXTRA_COMMANDS.extend([_add_scenario_commands, _add_explain_command, _add_segment_commands])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (TxError, StateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line unless debugging
        if os.environ.get("CLEARINGHOUSE_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set CLEARINGHOUSE_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    # Run the package module, not this file's __main__ copy, so there is one CliError class.
    from clearinghouse.cli import main as _main

    sys.exit(_main())
