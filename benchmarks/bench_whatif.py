"""
Benchmark: ``clearinghouse whatif`` with six policies against one ``clearinghouse verify`` of the same log.

Runs, ``--repeat`` times and interleaved (verify, whatif, verify, whatif, ...) so both see the
same load, the two commands as a user would, each in a fresh process:

    clearinghouse verify LOG --json
    clearinghouse whatif LOG --policies hyperliquid,bitmex,seed,pro-rata,risk-water-filling,clawback --json

and reports for each the fastest run's wall time and processor time (user + system of the child,
from ``resource.getrusage(RUSAGE_CHILDREN)``: the steadier figure on a shared machine), and the
ratio whatif / verify of each. Issue 13's bound: whatif with six policies costs at most 7 verifies.

Usage::

    python benchmarks/bench_whatif.py [--log fixtures/logs/cascade_generated.log] [--repeat 2] [--json] [--max-ratio 7]

With ``--max-ratio R`` the exit status is 1 if the CPU ratio exceeds R.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIX = "hyperliquid,bitmex,seed,pro-rata,risk-water-filling,clawback"


def timed(cmd: list[str]) -> dict[str, float]:
    """Wall and child CPU seconds of one command (its output is discarded; a failure raises)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--log", default=str(ROOT / "fixtures" / "logs" / "cascade_generated.log"))
    ap.add_argument("--policies", default=SIX)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--max-ratio", type=float, default=None)
    args = ap.parse_args(argv)
    cli = [sys.executable, "-m", "clearinghouse.tools.cli"]
    runs: dict[str, list[dict[str, float]]] = {"verify": [], "whatif": []}
    for _ in range(args.repeat):
        runs["verify"].append(timed(cli + ["verify", args.log, "--json"]))
        runs["whatif"].append(timed(cli + ["whatif", args.log, "--policies", args.policies, "--json"]))
    best = {k: {m: min(r[m] for r in v) for m in ("wall_s", "cpu_s")} for k, v in runs.items()}
    report: dict[str, Any] = {
        "log": os.path.relpath(args.log, ROOT),
        "policies": args.policies.split(","),
        "repeat": args.repeat,
        "verify": best["verify"],
        "whatif": best["whatif"],
        "ratio_cpu": round(best["whatif"]["cpu_s"] / best["verify"]["cpu_s"], 2),
        "ratio_wall": round(best["whatif"]["wall_s"] / best["verify"]["wall_s"], 2),
        "runs": runs,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        v, w = best["verify"], best["whatif"]
        print(f"log {report['log']}, {len(report['policies'])} policies, fastest of {args.repeat}")
        print(f"  verify  CPU {v['cpu_s']:8.2f} s   wall {v['wall_s']:8.2f} s")
        print(f"  whatif  CPU {w['cpu_s']:8.2f} s   wall {w['wall_s']:8.2f} s")
        print(f"  ratio   CPU {report['ratio_cpu']:8.2f} x   wall {report['ratio_wall']:8.2f} x")
    if args.max_ratio is not None and report["ratio_cpu"] > args.max_ratio:
        print(f"CPU ratio {report['ratio_cpu']} exceeds {args.max_ratio}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
