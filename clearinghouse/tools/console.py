"""Shared output helpers for the CLI: JSON printing, errors as JSON, tables that never cut numbers.

Under ``--json`` every outcome is JSON on stdout, failures included::

    {"ok": false, "error": {"code": "STORE_IN_USE", "message": "...", "exit_code": 1}}

and the same one-line ``error: ...`` still goes to stderr for people.
"""

from __future__ import annotations

import json
import re
import sys
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
