"""Shared output helpers for the CLI: JSON printing, errors as JSON, tables that never cut numbers.

Under ``--json`` every outcome is JSON on stdout, failures included::

    {"ok": false, "error": {"code": "STORE_IN_USE", "message": "...", "exit_code": 1}}

and the same one-line ``error: ...`` still goes to stderr for people.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any

_CODE_PREFIX = re.compile(r"^\[?([A-Z][A-Z0-9_]+)\]?:?\s+")


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def error_code(exc: BaseException, default: str) -> str:
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else default


def error_message(exc: BaseException) -> str:
    """The message without a leading ``CODE:`` / ``[CODE]`` (the code is a separate JSON field)."""
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        return message
    return _CODE_PREFIX.sub("", str(exc), count=1)


def report_error(text: str, *, code: str, message: str, exit_code: int, as_json: bool) -> int:
    """Print a failure: one line on stderr; under --json also a JSON error object on stdout."""
    print(text, file=sys.stderr)
    if as_json:
        print_json({"ok": False, "error": {"code": code, "message": message, "exit_code": exit_code}})
    return exit_code


# ---------------------------------------------------------------- exit codes and command errors
EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class CliError(Exception):
    """A user-facing failure with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAIL, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = code
        self.code = error_code or ("USAGE" if code == EXIT_USAGE else "BAD_INPUT")
        """Stable machine-readable kind of failure (the ``code`` of a JSON error)."""
        self.json_printed = False
        """Set when a JSON report describing the failure was already printed (no second JSON error)."""


def console(stderr: bool = False) -> Any:
    """A Rich console for people (no syntax highlighting; long lines wrap, never cut)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def cli_command(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Print this module's ``CliError``s as ``error: ...`` here.

    ``cli.main`` catches ``CliError`` too, but under ``python -m clearinghouse.tools.cli``
    the running module is ``__main__``, whose ``CliError`` is a different class
    from the one imported here; handling our own errors keeps the one-line
    message and exit code either way.
    """

    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except CliError as exc:
            as_json = bool(getattr(args, "json", False)) and not getattr(exc, "json_printed", False)
            return report_error(
                f"error: {exc}",
                code=getattr(exc, "code", "BAD_INPUT"),
                message=str(exc),
                exit_code=exc.exit_code,
                as_json=as_json,
            )

    return wrapper


def require_file(path: str) -> None:
    """A log file that exists and is not a folder, else a ``CliError`` (``NOT_A_LOG`` / ``NO_SUCH_FILE``)."""
    if os.path.isdir(path):
        raise CliError(f"{path} is a folder, not a log file", error_code="NOT_A_LOG")
    if not os.path.isfile(path):
        raise CliError(f"no such log file: {path}", error_code="NO_SUCH_FILE")


# ---------------------------------------------------------------- tables that never cut a number
class Column:
    """A table column: ``priority`` 0 is never dropped; higher numbers are dropped first when narrow."""

    def __init__(self, header: str, *, justify: str = "right", priority: int = 0) -> None:
        self.header = header
        self.justify = justify
        self.priority = priority


def render_table(
    con: Any, columns: list[Column], rows: list[list[str]], *, title: str | None = None, wide: bool = False
) -> list[str]:
    """Print a table whose cells are never cut with an ellipsis; return the headers of dropped columns.

    When the table is wider than the console, the lowest-priority columns are dropped
    (and named under the table) until it fits; what still does not fit wraps onto
    more lines rather than being cut. ``wide`` keeps every column and widens the
    output instead.
    """
    from rich.table import Table

    rows = [list(r) for r in rows]
    for i, c in enumerate(columns):
        if c.justify == "right":
            aligned = align_decimals([r[i] for r in rows])
            for r, v in zip(rows, aligned):
                r[i] = v
    widths = [max([len(c.header)] + [len(r[i]) for r in rows]) + 2 for i, c in enumerate(columns)]
    keep = list(range(len(columns)))
    dropped: list[str] = []
    if wide:
        total = sum(widths) + 2 * len(widths) + 4  # slack for rich's separators
        if total > con.width:
            con.width = total
    else:
        while sum(widths[i] for i in keep) > con.width:
            candidates = [i for i in keep if columns[i].priority > 0]
            if not candidates:
                break
            worst = max(candidates, key=lambda i: (columns[i].priority, i))
            keep.remove(worst)
            dropped.append(columns[worst].header)
    from rich import box

    table = Table(title=title, show_lines=False, box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False)
    for i in keep:
        table.add_column(columns[i].header, justify=columns[i].justify, overflow="fold", no_wrap=False)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(*(_escape(r[i]) for i in keep))
    con.print(table)
    if dropped:
        con.print(f"  (narrow output: left out {', '.join(dropped)}; use --wide or --json for everything)")
    return dropped


_NUMBER = re.compile(r"^-?[0-9][0-9,]*(\.[0-9]+)?$")


def align_decimals(cells: list[str]) -> list[str]:
    """Give every number in a column the same count of decimals (exact: trailing zeros), so they line up."""
    nums = [c for c in cells if _NUMBER.match(c)]
    if not nums:
        return cells
    places = max((len(c.split(".", 1)[1]) if "." in c else 0) for c in nums)
    if places == 0:
        return cells
    out = []
    for c in cells:
        if _NUMBER.match(c):
            whole, _, frac = c.partition(".")
            c = f"{whole}.{frac.ljust(places, '0')}"
        out.append(c)
    return out


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def diff_lines(a: Any, b: Any) -> list[str]:
    """Field-by-field lines for two decoded records (human units where a companion exists)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return [f"A: {_show(a)}", f"B: {_show(b)}"]
    out = []
    for name in sorted(k for k in a.keys() | b.keys() if not k.endswith(("_usdc", "_base"))):
        va, vb = a.get(name), b.get(name)
        if va == vb:
            continue
        human = next((s for s in ("_usdc", "_base") if name + s in a or name + s in b), None)
        if human:
            va, vb = a.get(name + human, va), b.get(name + human, vb)
        out.append(f"{name}: {_show(va)} -> {_show(vb)}")
    return out or ["(same fields; encodings differ)"]


def _show(v: Any) -> str:
    if v is None:
        return "(absent)"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)
