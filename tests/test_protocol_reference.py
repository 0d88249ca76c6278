"""docs/protocol.md and the code, held together (protocol §1).

Both directions:

* every code name the document quotes (`` `spec.waterfall.adl.run_adl` ``, `` `chain.engine.witness_of` ``,
  `` `tx.signing.recover_signer` ``, `` `state.smt.build_nodes` ``) exists;
* every public function and class of the consensus core (``clearinghouse/spec``) is named by a section,
  and every section the code cites (``protocol §N.M``) is a heading of the document;
* every public function and class of the core has a docstring citing its section, and a public function
  that raises names each exception it raises under ``Raises:``;
* every hash the document quotes is reproduced: by a fixture file, or (for the few worked values that no
  fixture holds) by computing it here.

No commit is named in the document: this test keeps it true.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text()
SPEC = ROOT / "clearinghouse" / "spec"

# `spec.x.y`, `chain.x.y`, `tools.x.y` name clearinghouse.<...>; `tx.x.y` and `state.x.y` the top-level packages.
REFERENCE = re.compile(r"`((?:spec|chain|tools|tx|state)(?:\.[A-Za-z_]\w*)+)`")
FILE_SUFFIXES = (".py", ".json", ".md", ".toml", ".log")


def quoted_references() -> list[str]:
    return sorted({m.group(1) for m in REFERENCE.finditer(PROTOCOL) if not m.group(1).endswith(FILE_SUFFIXES)})


def resolve(reference: str) -> object:
    """Import the longest module prefix of ``reference`` and walk the rest as attributes."""
    parts = reference.split(".")
    base = [] if parts[0] in ("tx", "state") else ["clearinghouse"]
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(base + parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(reference)


@pytest.mark.parametrize("reference", quoted_references())
def test_every_name_the_document_quotes_exists(reference: str) -> None:
    resolve(reference)


def public_spec_names() -> list[str]:
    out = []
    for path in sorted(SPEC.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        module = ".".join(path.relative_to(SPEC).with_suffix("").parts)
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                out.append(f"spec.{module}.{node.name}")
    return out


def test_every_public_consensus_function_is_named_by_a_section() -> None:
    names = public_spec_names()
    assert len(names) > 150  # not vacuous: the whole core is read
    missing = [n for n in names if f"`{n}`" not in PROTOCOL]
    assert missing == [], f"name these in docs/protocol.md (a section's 'Code:' line): {missing}"


def public_spec_definitions() -> list[tuple[str, ast.FunctionDef | ast.ClassDef]]:
    out: list[tuple[str, ast.FunctionDef | ast.ClassDef]] = []
    for path in sorted(SPEC.rglob("*.py")):
        module = ".".join(path.relative_to(SPEC).with_suffix("").parts)
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                out.append((f"spec.{module}.{node.name}", node))
    return out


CITE = re.compile(r"protocol §\d+(?:\.\d+)?")


def test_every_public_consensus_definition_cites_its_section() -> None:
    """Docstrings are the spec: each public function and class of the core says which section it implements."""
    defs = public_spec_definitions()
    assert len(defs) > 150
    undocumented = [name for name, node in defs if not ast.get_docstring(node)]
    uncited = [
        name for name, node in defs if ast.get_docstring(node) and not CITE.search(ast.get_docstring(node) or "")
    ]
    assert undocumented == [], f"give these a docstring citing protocol §N.M: {undocumented}"
    assert uncited == [], f"cite the protocol section (protocol §N.M) in these docstrings: {uncited}"


def raised_names(node: ast.FunctionDef) -> set[str]:
    """The exception classes a function raises by name in its own body (``raise X(...)``, ``raise X``)."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Raise) and sub.exc is not None:
            exc = sub.exc.func if isinstance(sub.exc, ast.Call) else sub.exc
            if isinstance(exc, ast.Name):
                names.add(exc.id)
            elif isinstance(exc, ast.Attribute):
                names.add(exc.attr)
    return names


def test_public_consensus_functions_that_raise_say_what_in_a_raises_section() -> None:
    """A public core function with a ``raise`` statement lists every exception it raises by name under ``Raises:``."""
    checked, missing = 0, []
    for name, node in public_spec_definitions():
        if not isinstance(node, ast.FunctionDef):
            continue
        raised = raised_names(node)
        if not raised:
            continue
        checked += 1
        doc = ast.get_docstring(node) or ""
        section = doc.split("Raises:", 1)[1] if "Raises:" in doc else ""
        absent = sorted(r for r in raised if not re.search(rf"\b{r}\b", section))
        if absent:
            missing.append(f"{name}: {', '.join(absent)}")
    assert checked > 20  # not vacuous
    assert missing == [], f"name these under 'Raises:' in the docstring: {missing}"


def headings() -> set[str]:
    return {m.group(1) for m in re.finditer(r"^#{2,3} (\d+(?:\.\d+)?)\b", PROTOCOL, re.M)}


def cited_sections() -> dict[str, list[str]]:
    """protocol §N.M (and ranges §N.M-§N.K, lists §N.M, §N.K) cited by code, tests and docs."""
    cites: dict[str, list[str]] = {}
    pattern = re.compile(r"protocol (§\d+(?:\.\d+)?(?:\s*(?:-|,|and)\s*§?\d+(?:\.\d+)?)*)")
    for folder in ("clearinghouse", "tx", "state", "tests", "fixtures"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".toml") or "__pycache__" in path.parts:
                continue
            for m in pattern.finditer(path.read_text()):
                for number in re.findall(r"\d+(?:\.\d+)?", m.group(1)):
                    cites.setdefault(number, []).append(str(path.relative_to(ROOT)))
    return cites


def test_every_cited_section_exists() -> None:
    cites = cited_sections()
    assert len(cites) > 20
    known = headings()
    dangling = {n: sorted(set(where))[:3] for n, where in cites.items() if n not in known}
    assert dangling == {}, dangling


def computed_values() -> dict[str, str]:
    """Hashes the document works out by hand, recomputed with the code."""
    from clearinghouse.spec.waterfall.ranking import ranking_hash
    from tx.merkle import leaf_hash, ordered_root

    return {
        ordered_root([b"a", b"b", b"c"]).hex(): "ordered_root example (§6.2)",
        leaf_hash(b"a").hex(): "leaf example (§6.2)",
        ranking_hash([]).hex(): "empty ADL queue (§12.10)",
    }


def fixture_text() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "fixtures").rglob("*.json")))


def test_every_hash_the_document_quotes_is_reproduced() -> None:
    fixtures = fixture_text()
    computed = computed_values()
    full = sorted(set(re.findall(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])", PROTOCOL)))
    short = sorted(set(re.findall(r"\b([0-9a-f]{8})…([0-9a-f]{4})\b", PROTOCOL)))
    assert full, "the document quotes no hash?"
    unreproduced = [h for h in full if h not in fixtures and h not in computed]
    assert unreproduced == []
    hex_in_fixtures = set(re.findall(r"[0-9a-f]{64}", fixtures))
    for head, tail in short:
        assert any(h.startswith(head) and h.endswith(tail) for h in hex_in_fixtures), f"{head}…{tail}"
