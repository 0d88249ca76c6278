"""Soak the state machine on fresh random seeds for N minutes (issue 14).

    python tools/soak.py --minutes 30 [--examples-per-seed 50] [--keep-going] [--out DIR]

Each round draws a fresh 64-bit seed (from the OS, not reproducible on purpose: the point is to
reach examples no fixed seed reaches) and runs

    python -m pytest --soak -x -q -p no:cacheprovider tests/test_state_machine.py --hypothesis-seed=SEED

with ``STATE_MACHINE_EXAMPLES`` examples (default 50), in a scratch directory so no example
database carries over between rounds. A round that fails prints its seed, the command that
reproduces it, and the shrunk example hypothesis printed (the ``state = ClearinghouseMachine()``
steps and the assertion); its full output is kept in ``--out`` (default a temporary directory).
Without ``--keep-going`` the soak stops at the first failure.

At the end (or on Ctrl-C) it prints the totals: rounds, examples, blocks, failures and wall time.
Exit status: 0 if every round passed, 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATS_LINE = re.compile(r"\[state machine\] profile=(\S+) examples=(\d+) blocks=(\d+)")


def shrunk_example(output: str) -> str:
    """The reproduction hypothesis printed: from ``state = ...()`` to the end of the steps, plus the error lines."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if "state = ClearinghouseMachine()" in line), None)
    errors = [line for line in lines if line.lstrip("| ").startswith("E ") and ("Error" in line or "assert" in line)][
        :6
    ]
    steps = []
    if start is not None:
        for line in lines[start:]:
            steps.append(line)
            if "state.teardown()" in line:
                break
    return "\n".join(errors + [""] + steps)


def run_round(seed: int, examples: int, scratch: Path, timeout_s: int) -> tuple[int, str, float]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--soak",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(REPO),
        str(REPO / "tests" / "test_state_machine.py"),
        f"--hypothesis-seed={seed}",
    ]
    env = dict(os.environ, STATE_MACHINE_EXAMPLES=str(examples))
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code, out = 124, f"timed out after {timeout_s} s\n{partial}"
    return code, out, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, required=True, help="stop starting new rounds after this long")
    ap.add_argument("--examples-per-seed", type=int, default=50)
    ap.add_argument("--keep-going", action="store_true", help="go on after a failing round")
    ap.add_argument("--out", type=Path, default=None, help="where failing rounds' full output is written")
    ap.add_argument("--round-timeout", type=int, default=3600, help="seconds before one round is abandoned")
    args = ap.parse_args(argv)

    out_dir = args.out or Path(tempfile.mkdtemp(prefix="soak-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.minutes * 60
    started = time.monotonic()
    rounds = examples = blocks = 0
    failures: list[int] = []
    try:
        while time.monotonic() < deadline:
            seed = secrets.randbits(64)
            with tempfile.TemporaryDirectory(prefix="soak-round-") as scratch:
                code, out, took = run_round(seed, args.examples_per_seed, Path(scratch), args.round_timeout)
            rounds += 1
            m = STATS_LINE.search(out)
            if m:
                examples += int(m.group(2))
                blocks += int(m.group(3))
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            print(
                f"round {rounds}: seed {seed} {status} in {took:.0f} s"
                + (f" ({m.group(2)} examples, {m.group(3)} blocks)" if m else ""),
                flush=True,
            )
            if code != 0:
                failures.append(seed)
                path = out_dir / f"seed-{seed}.txt"
                path.write_text(out)
                print(
                    f"  reproduce: STATE_MACHINE_EXAMPLES={args.examples_per_seed} python -m pytest --soak -x "
                    f"tests/test_state_machine.py --hypothesis-seed={seed}"
                )
                print(f"  full output: {path}")
                print("  " + shrunk_example(out).replace("\n", "\n  "), flush=True)
                if not args.keep_going:
                    break
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    elapsed = time.monotonic() - started
    print(
        f"soak: {rounds} rounds, {examples} examples, {blocks} blocks, {len(failures)} failing seeds"
        f"{' ' + ', '.join(map(str, failures)) if failures else ''}, {elapsed / 60:.1f} min",
        flush=True,
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
