"""The ``clearinghouse`` command: demo, replay, verify, inspect.

Every expected failure (a damaged log, a mismatching root, a bad address, a
store that cannot be opened) is printed as one line ``error: CODE: message``
and gives a non-zero exit; a traceback means a bug (set CLEARINGHOUSE_DEBUG=1
to see it). Exit codes: 0 success, 1 verification failed or bad input,
2 usage error, 3 internal error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Any

from clearinghouse.tools.console import (
    EXIT_FAIL,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    console,
    print_json,
    require_file,
)
from clearinghouse.tools.safety import open_existing_store
from state.errors import StateError
from tx.errors import TxError


def _unsafe(exc: Exception) -> CliError:
    return CliError(str(exc), error_code="UNSAFE_PATH")


# ---------------------------------------------------------------- commands
def cmd_demo(args: argparse.Namespace) -> int:
    from clearinghouse.tools.demo import build_demo_log, demo_labels
    from clearinghouse.tools.reporting import (
        render_summary,
        replay_into_db,
        summary_dict,
    )
    from clearinghouse.tools.safety import UnsafePath, prepare_demo_dir

    out = os.path.abspath(args.out)
    try:
        log_path, db_path = prepare_demo_dir(out, force=args.force)
    except UnsafePath as exc:
        raise _unsafe(exc) from None
    build_demo_log(log_path)
    result = replay_into_db(log_path, db_path, progress=not args.json and sys.stderr.isatty(), labels=demo_labels())
    summary = summary_dict(result, top=args.top if args.json and args.top else None)
    if args.json:
        print_json(summary)
    else:
        render_summary(
            console(),
            summary,
            title="Demo chain",
            top=20 if args.top is None else args.top,
            wide=args.wide,
            quiet=args.quiet,
        )
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from clearinghouse.tools.reporting import (
        render_summary,
        replay_into_db,
        summary_dict,
    )
    from clearinghouse.tools.safety import NewDatabase, UnsafePath

    require_file(args.log)
    try:
        created = NewDatabase(os.path.abspath(args.db))
    except UnsafePath as exc:
        raise _unsafe(exc) from None
    try:
        from clearinghouse.tools.names import known_names, labels
        from clearinghouse.tools.segments_cli import snapshot_writer

        result = replay_into_db(
            args.log,
            args.db,
            progress=not args.json and sys.stderr.isatty(),
            after_block=snapshot_writer(args),
            labels=labels(known_names()),
            recover_workers=args.recover_workers,
            commit_every=args.commit_every,
            commit_ms=args.commit_ms,
        )
    except BaseException as exc:
        from state import StoreInUse

        if not isinstance(exc, StoreInUse):  # another writer's files are not ours to remove
            created.discard()
        raise
    summary = summary_dict(result, top=args.top if args.json and args.top else None)
    if args.json:
        print_json(summary)
    else:
        render_summary(
            console(),
            summary,
            title="Replay",
            top=20 if args.top is None else args.top,
            wide=args.wide,
            quiet=args.quiet,
        )
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from clearinghouse.tools.segments_cli import check_verify_flags, cmd_verify_segments

    if check_verify_flags(args):  # --snapshots: in segments, on a process pool or Dask
        return cmd_verify_segments(args)
    from clearinghouse.chain.engine import VerifyFailure
    from clearinghouse.tools.reporting import replay_into_db, summary_dict

    require_file(args.log)
    tmp = tempfile.mkdtemp(prefix="clearinghouse-verify-")
    try:
        try:
            result = replay_into_db(
                args.log,
                os.path.join(tmp, "state") if args.backend == "lmdb" else None,
                progress=not args.json and sys.stderr.isatty(),
                recover_workers=args.recover_workers,
                commit_every=args.commit_every,
                commit_ms=args.commit_ms,
                keep_events=False,
            )
        except VerifyFailure as exc:
            report = {
                "ok": False,
                "log": os.path.abspath(args.log),
                "height": exc.height,
                "what": exc.what,
                "tx_index": exc.tx_index,
                "differing_keys": exc.keys,
                "error": str(exc),
            }
            if args.json:
                print_json(report)
            else:
                con = console(stderr=True)
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
    if result.height < 0:
        raise CliError(
            f"{args.log} holds no genesis (only the file header): there is no chain to verify", error_code="NO_GENESIS"
        )
    problems = []
    if args.expect_height is not None and result.height != args.expect_height:
        problems.append(
            f"the log ends at height {result.height}, expected {args.expect_height} (cut short or extended?)"
        )
    if args.expect_root is not None and summary["state_root"] != args.expect_root.lower().removeprefix("0x"):
        problems.append(f"the final state root is {summary['state_root']}, expected {args.expect_root}")
    if problems:
        if args.json:
            summary.update(
                ok=False, expected={"height": args.expect_height, "state_root": args.expect_root}, problems=problems
            )
            print_json(summary)
        for text in problems:
            print(f"error: EXPECTATION_MISMATCH: {text}", file=sys.stderr)
        return EXIT_FAIL
    summary["ok"] = True
    if args.json:
        print_json(summary)
    else:
        console().print(
            f"[bold green]OK[/]: {summary['blocks']} blocks, height {summary['height']}, every header root reproduced; state root {summary['state_root']}"
        )
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from clearinghouse.spec.state.keys import account_key
    from clearinghouse.tools import names as N
    from clearinghouse.tools.reporting import account_report, render_account

    if args.address.lower().startswith("0x"):
        _parse_address(args.address)  # a malformed address is a usage error (exit 2), before the database
    with open_existing_store(args.db) as store:
        try:
            from clearinghouse.tools.scenario.parse import scenario_names

            known = N.known_names(names=args.names, scenario=scenario_names(args.scenario))
            addr, name = N.resolve(args.address, known, lambda a: store.get(account_key(a)) is not None)
        except N.UnknownName as exc:
            raise CliError(str(exc), error_code="UNKNOWN_ACCOUNT") from None
        report = account_report(store, addr, with_proof=args.proof, name=name)
    if args.json:
        print_json(report)
    else:
        render_account(console(), report, wide=args.wide)
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    """Per-namespace hashes of two stores and, where they differ, the differing keys."""
    from clearinghouse.tools.diff import differing_keys, namespace_hashes

    a = open_existing_store(args.db_a)
    try:
        b = open_existing_store(args.db_b)
    except BaseException:
        a.close()
        raise
    try:
        ha, hb = namespace_hashes(a), namespace_hashes(b)
        namespaces = sorted(set(ha) | set(hb))
        rows: list[dict[str, Any]] = [
            {"namespace": n, "a": ha.get(n), "b": hb.get(n), "same": ha.get(n) == hb.get(n)} for n in namespaces
        ]
        same = a.root == b.root and all(r["same"] for r in rows)
        from clearinghouse.tools.diff import market_specs

        specs = {**market_specs(b), **market_specs(a)}
        decimals = {m: spec.sz_decimals for m, spec in specs.items()}
        names = {m: spec.name for m, spec in specs.items()}
        diffs = [] if same else list(differing_keys(a, b, limit=args.limit, decimals=decimals, market_names=names))
        report: dict[str, Any] = {
            "same": same,
            "a": {"db": args.db_a, "height": a.height, "root": a.root.hex()},
            "b": {"db": args.db_b, "height": b.height, "root": b.root.hex()},
            "namespaces": rows,
            "differences": diffs,
        }
    finally:
        a.close()
        b.close()
    if args.json:
        print_json(report)
    else:
        from clearinghouse.tools.console import Column, diff_lines, render_table

        con = console()
        con.print(f"A {report['a']['db']}  height {report['a']['height']}  root {report['a']['root']}")
        con.print(f"B {report['b']['db']}  height {report['b']['height']}  root {report['b']['root']}")
        columns = [
            Column("namespace", justify="left"),
            Column("A records"),
            Column("B records"),
            Column("", justify="left"),
            Column("A hash", justify="left", priority=1),
            Column("B hash", justify="left", priority=1),
        ]
        table_rows = []
        for r in rows:
            ca, hha = r["a"] or (0, "-")
            cb, hhb = r["b"] or (0, "-")
            table_rows.append([r["namespace"], f"{ca:,}", f"{cb:,}", "same" if r["same"] else "DIFFERS", hha, hhb])
        render_table(con, columns, table_rows, title="Namespaces", wide=args.wide)
        for d in diffs:
            con.print(f"[bold]{d['key_name']}[/]", markup=True)
            for line in diff_lines(d["a"], d["b"]):
                con.print(f"  {line}", markup=False)
        con.print("[green]identical[/]" if same else f"[red]{len(diffs)} differing key(s) shown[/]")
    return EXIT_OK if same else EXIT_FAIL


def cmd_audit(args: argparse.Namespace) -> int:
    """Check the invariants of protocol §1.1 on a stored state."""
    from clearinghouse.tools.invariants import check_all

    store = open_existing_store(args.db)
    try:
        violations = check_all(store)
        report = {
            "db": args.db,
            "height": store.height,
            "state_root": store.root.hex(),
            "ok": not violations,
            "violations": violations,
        }
        if args.deep:
            from clearinghouse.tools.deep_audit import deep_audit

            deep = deep_audit(store)
            report["deep"] = deep
            violations.extend(deep["problems"])
            report["ok"] = not violations
    finally:
        store.close()
    if args.json:
        print_json(report)
    else:
        con = console()
        if violations:
            con.print(f"[bold red]{len(violations)} invariant violation(s)[/] at height {report['height']}:")
            for v in violations:
                con.print(f"  - {v}")
        else:
            con.print(
                f"[green]OK[/]: conservation, funding, open interest, solvency, bookkeeping and book hold at height {report['height']} (root {report['state_root']})"
            )
        if "deep" in report and not violations:
            d = report["deep"]
            con.print(
                f"[green]OK[/]: the root recomputed from all {d['records']:,} stored records equals the stored root and the last header's"
            )
    return EXIT_OK if not violations else EXIT_FAIL


# ---------------------------------------------------------------- helpers
def _parse_address(text: str) -> bytes:
    from tx.signing import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise CliError(f"bad address {text!r}: {exc}", EXIT_USAGE) from None


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_replay_args(p: argparse.ArgumentParser) -> None:
    """Throughput options of replay and verify (protocol §8.5; the result never depends on them)."""
    from clearinghouse.chain.recovery import DEFAULT_WORKERS
    from clearinghouse.tools.reporting import COMMIT_EVERY, COMMIT_MS

    p.add_argument(
        "--recover-workers",
        type=_non_negative,
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"processes recovering signatures of the next blocks while one executes (0: none; default {DEFAULT_WORKERS})",
    )
    p.add_argument(
        "--commit-every",
        type=_positive,
        default=COMMIT_EVERY,
        metavar="B",
        help=f"LMDB: commit durably every B blocks (a crash replays the rest from the log; default {COMMIT_EVERY})",
    )
    p.add_argument(
        "--commit-ms",
        type=_positive,
        default=COMMIT_MS,
        metavar="MS",
        help=f"LMDB: and at least every MS milliseconds (default {COMMIT_MS})",
    )


def _add_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--top",
        type=int,
        default=None,
        metavar="N",
        help="show the N most valuable accounts (text default 20, JSON default all; 0 for all)",
    )
    p.add_argument("--quiet", action="store_true", help="print the summary lines without the accounts table")
    p.add_argument(
        "--wide", action="store_true", help="never leave out table columns (the output may be wider than the terminal)"
    )


def build_parser() -> argparse.ArgumentParser:
    from clearinghouse import __version__

    parser = argparse.ArgumentParser(prog="clearinghouse", description="A replayable perpetual-futures clearinghouse.")
    parser.add_argument(
        "--version", action="version", version=f"clearinghouse {__version__}", help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="build the demo log, replay it into DIR/state and summarise it")
    p.add_argument("--out", default="demo-out", metavar="DIR", help="output directory (default: ./demo-out)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument(
        "--force",
        action="store_true",
        help="use a non-empty folder the demo did not create (only demo.log and state/ are replaced; nothing else is touched)",
    )
    _add_table_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("replay", help="apply a log to an LMDB state directory, resuming from its height")
    p.add_argument("log", metavar="LOG", help="the log file to apply")
    p.add_argument(
        "--db", required=True, metavar="DIR", help="state database folder (created if new; one writer at a time)"
    )
    p.add_argument("--json", action="store_true", help="print the summary (or the error) as JSON")
    _add_replay_args(p)
    _add_table_args(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("verify", help="replay a log into a temporary store and check every header root")
    p.add_argument("log", metavar="LOG", help="the log file to verify (it must start with a genesis)")
    p.add_argument(
        "--backend", choices=("memory", "lmdb"), default="memory", help="where the replay keeps state (default: memory)"
    )
    p.add_argument(
        "--expect-height",
        type=int,
        default=None,
        metavar="H",
        help="fail unless the log ends exactly at height H (catches a log cut at a frame boundary)",
    )
    p.add_argument(
        "--expect-root",
        default=None,
        metavar="HEX",
        help="fail unless the final state root is HEX (from a trusted source)",
    )
    p.add_argument("--json", action="store_true", help="print the result (or the error) as JSON")
    _add_replay_args(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("inspect", help="show an account's state, optionally with a Merkle proof")
    p.add_argument("--db", required=True, metavar="DIR", help="state database folder (opened read-only)")
    p.add_argument("address", metavar="ADDRESS_OR_NAME", help="a 0x address or an account name")
    p.add_argument(
        "--proof",
        action="store_true",
        help="include inclusion proofs (account and positions) checked against the stored root, as JSON",
    )
    p.add_argument("--json", action="store_true", help="print the report (or the error) as JSON")
    p.add_argument(
        "--wide", action="store_true", help="never leave out table columns (the output may be wider than the terminal)"
    )
    from clearinghouse.tools.names import add_name_args

    add_name_args(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("diff", help="compare two state databases per namespace and list differing keys")
    p.add_argument("db_a", metavar="DB_A", help="first state database folder (opened read-only)")
    p.add_argument("db_b", metavar="DB_B", help="second state database folder (opened read-only)")
    p.add_argument("--limit", type=int, default=200, help="most differing keys to list")
    p.add_argument("--json", action="store_true", help="print the comparison (or the error) as JSON")
    p.add_argument(
        "--wide", action="store_true", help="never leave out table columns (the output may be wider than the terminal)"
    )
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("audit", help="check the invariants (conservation, open interest, solvency) on a state database")
    p.add_argument("--db", required=True, metavar="DIR", help="state database folder (opened read-only)")
    p.add_argument(
        "--deep",
        action="store_true",
        help="also recompute the state root from every stored record, compare it with the header and name the first bad key",
    )
    p.add_argument("--json", action="store_true", help="print the report (or the error) as JSON")
    p.set_defaults(func=cmd_audit)

    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return parser


_EXTRA_COMMANDS: list = []
"""Later modules add subcommands here (scenario, explain, diff, audit)."""


def _add_scenario_commands(sub: Any) -> None:
    from clearinghouse.tools.scenario.command import add_scenario_command

    add_scenario_command(sub)


def _add_explain_command(sub: Any) -> None:
    from clearinghouse.tools.explain import add_explain_command

    add_explain_command(sub)


def _add_segment_commands(sub: Any) -> None:
    from clearinghouse.tools.segments_cli import add_segment_commands

    add_segment_commands(sub)  # `snapshot`, and the snapshot/segment flags of `replay` and `verify`


def _add_export_command(sub: Any) -> None:
    from clearinghouse.tools.export_cli import add_export_command

    add_export_command(sub)


def _add_schema_command(sub: Any) -> None:
    from clearinghouse.tools.schemas import add_schema_command

    add_schema_command(sub)


def _add_report_command(sub: Any) -> None:
    from clearinghouse.tools.report import add_report_command

    add_report_command(sub)


_EXTRA_COMMANDS.extend(
    [
        _add_scenario_commands,
        _add_explain_command,
        _add_segment_commands,
        _add_export_command,
        _add_schema_command,
        _add_report_command,
    ]
)


def _add_lab_commands(sub: Any) -> None:
    from clearinghouse.tools.generate import add_generate_command
    from clearinghouse.tools.whatif import add_whatif_command

    add_generate_command(sub)  # `generate`: seeded load logs (tools/generate.py)
    add_whatif_command(sub)  # `whatif`: the ADL policy lab (tools/whatif.py)


_EXTRA_COMMANDS.append(_add_lab_commands)


def main(argv: list[str] | None = None) -> int:
    from clearinghouse.tools.console import error_code, error_message, report_error

    parser = build_parser()
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        return args.func(args)
    except CliError as exc:
        return report_error(
            f"error: {exc}",
            code=exc.code,
            message=str(exc),
            exit_code=exc.exit_code,
            as_json=as_json and not getattr(exc, "json_printed", False),
        )
    except (TxError, StateError) as exc:
        return report_error(
            f"error: {exc}",
            code=error_code(exc, "ERROR"),
            message=error_message(exc),
            exit_code=EXIT_FAIL,
            as_json=as_json,
        )
    except BrokenPipeError:  # the reader stopped early (`| head`): not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except OSError as exc:
        import errno

        code = "DISK_FULL" if exc.errno == errno.ENOSPC else "OS_ERROR"
        text = f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": ")
        return report_error(f"error: {code}: {text}", code=code, message=text, exit_code=EXIT_FAIL, as_json=as_json)
    except KeyboardInterrupt:
        return report_error(
            "error: interrupted", code="INTERRUPTED", message="interrupted", exit_code=130, as_json=as_json
        )
    except Exception as exc:  # a bug: say so in one line unless debugging
        if os.environ.get("CLEARINGHOUSE_DEBUG"):
            raise
        import msgspec

        if isinstance(exc, (msgspec.ValidationError, msgspec.DecodeError)) and _reads_a_database(args):
            text = f"stored records cannot be read by this version (written by another version, or damaged): {exc}"
            return report_error(
                f"error: STORE_INCOMPATIBLE: {text}",
                code="STORE_INCOMPATIBLE",
                message=text,
                exit_code=EXIT_FAIL,
                as_json=as_json,
            )
        lmdb_error = _lmdb_failure(exc)
        if lmdb_error is not None:
            code, text = lmdb_error
            return report_error(f"error: {code}: {text}", code=code, message=text, exit_code=EXIT_FAIL, as_json=as_json)
        text = f"{type(exc).__name__}: {exc}"
        return report_error(
            f"internal error: {text} (set CLEARINGHOUSE_DEBUG=1 for a traceback)",
            code="INTERNAL",
            message=text,
            exit_code=EXIT_INTERNAL,
            as_json=as_json,
        )


def _reads_a_database(args: argparse.Namespace) -> bool:
    """Whether the command reads a state database (so an undecodable record is the database's, not a bug)."""
    if getattr(args, "db", None) or getattr(args, "db_a", None):
        return True
    source = getattr(args, "source", None)
    return isinstance(source, str) and os.path.isdir(source)


def _lmdb_failure(exc: BaseException) -> tuple[str, str] | None:
    """An LMDB error that escaped the store's translation: a full disk or a damaged database, not a bug."""
    import lmdb

    if not isinstance(exc, lmdb.Error):
        return None
    if isinstance(exc, lmdb.MapFullError) or "No space left" in str(exc):
        return "STORE_FULL", f"the disk or database is full: {exc}"
    return "CORRUPT_STORE", f"the database is damaged or unreadable: {exc}"


if __name__ == "__main__":
    # Run the package module, not this file's __main__ copy, so there is one CliError class.
    from clearinghouse.tools.cli import main as _main

    sys.exit(_main())
