"""The layers and the import graph (docs/architecture.md).

* no import circles anywhere in ``tx``, ``state`` and ``clearinghouse`` (lazy imports inside
  functions count: they are how circles hide; imports under ``if TYPE_CHECKING:`` do not, since they
  never run);
* dependencies flow ``tx <- state <- clearinghouse.spec <- clearinghouse.chain <- clearinghouse.tools``,
  never back;
* ``apply_block`` is the whole transition: in a fresh interpreter that imports only
  ``clearinghouse.spec.block`` it produces the same changes and events as the engine.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tx", "state", "clearinghouse")

# Layer order: a module may import from its own layer or a lower one only.
LAYERS = ["tx", "state", "clearinghouse.spec", "clearinghouse.chain", "clearinghouse.tools"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[module_name(path)] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every project module that ``name`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    # Imports under ``if TYPE_CHECKING:`` exist for annotations only and never run: not edges.
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            typing_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                hit = resolve(alias.name)
                if hit:
                    found.add(hit)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_pkg:
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                hit = resolve(f"{mod}.{alias.name}") or resolve(mod)
                if hit:
                    found.add(hit)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = project_modules()
    known = set(mods)
    g = {name: imports_of(name, path, known) for name, path in mods.items()}
    # A package's __init__ is imported by every module in it; that edge is not a dependency.
    return {n: {d for d in deps if not n.startswith(d + ".")} for n, deps in g.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def layer_of(name: str) -> int | None:
    best = None
    for i, prefix in enumerate(LAYERS):
        if name == prefix or name.startswith(prefix + "."):
            best = i
    return best


def test_no_import_circles():
    assert cycles(graph()) == []


def test_dependencies_flow_one_way():
    bad = []
    for name, deps in sorted(graph().items()):
        mine = layer_of(name)
        if mine is None:
            continue
        for dep in sorted(deps):
            theirs = layer_of(dep)
            if theirs is not None and theirs > mine:
                bad.append(f"{name} imports {dep}")
    assert bad == []


def test_every_module_is_in_a_layer():
    stray = [n for n in graph() if layer_of(n) is None and n != "clearinghouse" and n != "clearinghouse.__main__"]
    assert stray == []


ALONE = r"""
import sys
from clearinghouse.spec.block import apply_block, apply_genesis
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState
from state.memory_store import MemoryStore
import msgspec
genesis, blocks = msgspec.msgpack.decode(sys.stdin.buffer.read())
from tx.encoding import decode_genesis
store = MemoryStore()
index = KeyIndex.load(store)
ws = WorkingState(store, index)
apply_genesis(ws, decode_genesis(genesis))
store.commit_block(0, ws.changes(), {})
loaded = sorted(m for m in sys.modules if m.startswith("clearinghouse"))
out = []
for height, time_ms, txs in blocks:
    ws = WorkingState(store, index)
    events = apply_block(ws, height, time_ms, txs)
    changes = ws.changes()
    store.commit_block(height, changes, {})
    out.append([store.root.hex(), len(events)])
sys.stdout.write(msgspec.json.encode({"roots": out, "loaded": loaded}).decode())
"""


def test_apply_block_alone_matches_the_engine(demo_log):
    """``apply_block`` needs nothing imported beside it: no registry, no import side effect."""
    import msgspec

    from tx.encoding import decode_canonical
    from tx.logfile import FRAME_GENESIS, read_log
    from tx.messages import LogBlock

    genesis = b""
    blocks = []
    headers = []
    for frame in read_log(demo_log):
        if frame.kind == FRAME_GENESIS:
            genesis = frame.payload
            continue
        lb = decode_canonical(frame.payload, LogBlock, what="block")
        blocks.append([lb.block.header.height, lb.block.header.time_ms, list(lb.block.txs)])
        headers.append(lb.block.header)
    payload = msgspec.msgpack.encode([genesis, blocks])
    run = subprocess.run([sys.executable, "-c", ALONE], input=payload, capture_output=True, cwd=ROOT, check=True)
    result = msgspec.json.decode(run.stdout)
    assert not any(m.startswith(("clearinghouse.tools", "clearinghouse.chain")) for m in result["loaded"])
    assert [r[0] for r in result["roots"]] == [h.state_root.hex() for h in headers]
