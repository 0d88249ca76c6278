"""``clearinghouse export KIND LOG_OR_DB``: the command around :mod:`clearinghouse.tools.exports`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

KINDS = {
    "fills": "every fill, once per side, as Hyperliquid userFills records (liquidation fills carry `liquidation`)",
    "state": "an account's Hyperliquid clearinghouseState at a height (--user, --height)",
    "funding": "every funding payment as Hyperliquid userFunding records",
    "liquidations": "every liquidation, backstop, insurance-fund and ADL event with its evidence",
    "ledger": "deposits, withdrawals, transfers, funding, fees, backstop margin and insurance covers per account",
}


def cmd_export(args: argparse.Namespace) -> int:
    from clearinghouse.tools import names as N
    from clearinghouse.tools.console import EXIT_OK, EXIT_USAGE, CliError
    from clearinghouse.tools.exports import ExportError, run_export
    from clearinghouse.tools.scenario.parse import scenario_names

    if args.height is not None and args.height < 0:
        raise CliError(f"--height must be at least 0, got {args.height}", EXIT_USAGE)
    if args.height is not None and args.kind != "state":
        raise CliError("--height applies to `export state` only", EXIT_USAGE)
    try:
        known = N.known_names(names=args.names, scenario=scenario_names(args.scenario))
    except N.UnknownName as exc:
        raise CliError(str(exc)) from None

    def resolve(src: Any) -> bytes | None:
        if args.user is None:
            return None
        from clearinghouse.spec.state.keys import account_key

        view = src.view()
        try:
            return N.resolve(args.user, known, lambda a: view.get(account_key(a)) is not None)[0]
        except N.UnknownName as exc:
            raise CliError(str(exc), error_code="UNKNOWN_ACCOUNT") from None

    out_path = args.output
    tmp_path = None
    try:
        if out_path in (None, "-"):
            count = run_export(
                args.kind,
                args.source,
                out=sys.stdout,
                fmt=args.format,
                height=args.height,
                names=N.labels(known),
                resolve=resolve,
            )
        else:
            if os.path.isdir(out_path):
                raise CliError(f"{out_path} is a folder; give a file name for -o")
            tmp_path = out_path + ".partial"
            with open(tmp_path, "w", encoding="utf-8", newline="") as f:
                count = run_export(
                    args.kind,
                    args.source,
                    out=f,
                    fmt=args.format,
                    height=args.height,
                    names=N.labels(known),
                    resolve=resolve,
                )
            os.replace(tmp_path, out_path)
            tmp_path = None
            print(f"wrote {count:,} {args.kind} record(s) to {out_path}", file=sys.stderr)
    except ExportError as exc:
        raise CliError(str(exc), error_code="EXPORT_FAILED") from None
    finally:
        if tmp_path is not None and os.path.exists(tmp_path):
            os.remove(tmp_path)
    return EXIT_OK


def add_export_command(sub: Any) -> None:
    from clearinghouse.tools.console import cli_command
    from clearinghouse.tools.names import add_name_args

    p = sub.add_parser(
        "export",
        help="Hyperliquid-shaped exports of a chain: fills, state, funding, liquidations, ledger (docs/exports.md)",
    )
    p.add_argument(
        "kind",
        choices=sorted(KINDS),
        metavar="KIND",
        help="what to export: " + "; ".join(f"{k}: {v}" for k, v in KINDS.items()),
    )
    p.add_argument(
        "source",
        metavar="LOG_OR_DB",
        help="a log file (replayed in memory as it is read) or a state database folder (read-only)",
    )
    p.add_argument("--user", default=None, metavar="ADDRESS_OR_NAME", help="only this account (required for state)")
    p.add_argument(
        "--height", type=int, default=None, metavar="H", help="state: the state after block H (default: the last block)"
    )
    p.add_argument(
        "--format", choices=("jsonl", "csv"), default="jsonl", help="JSON Lines with decimal strings (default) or CSV"
    )
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="write to FILE (atomically) instead of stdout")
    add_name_args(p)
    p.set_defaults(func=cli_command(cmd_export), json=False)
