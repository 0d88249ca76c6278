"""Habits the code keeps (issue 9), checked on the source text.

* state keys are parsed only in ``spec/state/keys.py`` (protocol §7.1);
* events and actions are told apart by ``isinstance`` (or their tag), never by comparing class-name strings;
* the consensus core keeps to 120 columns.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clearinghouse"


def lines_of(folder: Path) -> list[tuple[str, int, str]]:
    out = []
    for path in sorted(folder.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE))
        out += [(rel, n, line) for n, line in enumerate(path.read_text().splitlines(), 1)]
    return out


SLICE = re.compile(r"(?<!\+ )key\[(?:1:21|21:25|5:|1:5|1:)\]|key\[len\(")  # "owner + key[1:]" builds, not parses


def test_no_key_slicing_outside_keys_py() -> None:
    found = [f"{rel}:{n}" for rel, n, line in lines_of(PACKAGE) if rel != "spec/state/keys.py" and SLICE.search(line)]
    assert found == []


NAME_DISPATCH = re.compile(r"\)\.__name__\s*(?:==|!=|in\b)|\b(?:name|n)\s*(?:==|!=)\s*\"[A-Z][A-Za-z]+\"")


def test_no_class_name_dispatch() -> None:
    found = [f"{rel}:{n}: {line.strip()}" for rel, n, line in lines_of(PACKAGE) if NAME_DISPATCH.search(line)]
    assert found == []


def test_the_core_keeps_to_120_columns() -> None:
    long = [f"{rel}:{n}" for rel, n, line in lines_of(PACKAGE / "spec") if len(line) > 120]
    assert long == []


def test_consensus_constants_are_defined_once() -> None:
    """Every constant of ``spec/constants.py`` is assigned there and nowhere else in the package
    (protocol §2.1): other modules import it (re-exports as ``from ... import X as X`` are imports)."""
    import ast

    names = {
        t.id
        for node in ast.parse((PACKAGE / "spec" / "constants.py").read_text()).body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        for t in (t.elts if isinstance(t, ast.Tuple) else [t])
        if isinstance(t, ast.Name)
    }
    assert {"USDC", "PPM", "RATE_SCALE", "CROSS", "NO_TX"} <= names
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "spec" / "constants.py":
            continue
        for node in ast.parse(path.read_text()).body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for t in targets:
                for n in t.elts if isinstance(t, ast.Tuple) else [t]:
                    if isinstance(n, ast.Name) and n.id in names:
                        found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {n.id}")
    assert found == []
