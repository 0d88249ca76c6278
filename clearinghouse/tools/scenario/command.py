"""``clearinghouse scenario run|compile``: the command-line face of the scenario tools."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from typing import Any

from clearinghouse.tools.console import EXIT_FAIL, CliError, cli_command
from clearinghouse.tools.scenario.model import ScenarioError
from clearinghouse.tools.scenario.parse import load_scenario
from clearinghouse.tools.scenario.render import render_run, scenario_report
from clearinghouse.tools.scenario.run import ScenarioRun, run_scenario


# ---------------------------------------------------------------- CLI
def _expect_failure_error(run: ScenarioRun) -> CliError:
    first = run.failed_expects[0]
    more = len(run.failed_expects) - 1
    tail = f" (and {more} more failed expectation{'s' if more > 1 else ''})" if more else ""
    return CliError(
        f"expectation failed at step {first.step} (height {first.height}): {first.message}{tail}", EXIT_FAIL
    )


def _run_to(args: argparse.Namespace, log_path: str | None) -> tuple[ScenarioRun, str | None, str | None]:
    """Run the scenario, writing the log to ``log_path`` or a temp dir (returned for cleanup)."""
    sc = load_scenario(args.file)
    tmp = None
    if log_path is None:
        tmp = tempfile.mkdtemp(prefix="clearinghouse-scenario-")
        path = os.path.join(tmp, "scenario.log")
    else:
        path = os.path.abspath(log_path)
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent):
            raise ScenarioError(f"cannot write the log: no such directory {parent}")
        if os.path.isdir(path):
            raise ScenarioError(f"cannot write the log: {path} is a directory")
    try:
        run = run_scenario(sc, path)
    except BaseException:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return run, (path if tmp is None else None), tmp


def cmd_scenario_run(args: argparse.Namespace) -> int:
    from clearinghouse.tools.console import EXIT_OK, console, print_json

    run, log, tmp = _run_to(args, args.log)
    try:
        if args.json:
            print_json(scenario_report(run, log=log))
        else:
            render_run(console(), run, log=log)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if run.failed_expects:
        err = _expect_failure_error(run)
        err.json_printed = bool(args.json)  # the JSON report above already says what failed
        raise err
    return EXIT_OK


def cmd_scenario_compile(args: argparse.Namespace) -> int:
    from clearinghouse.tools.console import EXIT_OK, console, print_json

    run, log, _tmp = _run_to(args, args.log)
    info = {
        "scenario": run.scenario.name,
        "log": log,
        "height": run.producer.engine.height,
        "state_root": run.producer.engine.store.root.hex(),
        "blocks": len(run.blocks),
        "expects_passed": sum(1 for e in run.expects if e.ok),
        "expects_failed": len(run.failed_expects),
    }
    if args.json:
        print_json(info)
    else:
        console().print(
            f"wrote {log}: {info['blocks']} blocks, height {info['height']}, state root {info['state_root']}"
        )
    if run.failed_expects:
        err = _expect_failure_error(run)
        err.json_printed = bool(args.json)  # the JSON report above already says what failed
        raise err
    return EXIT_OK


def add_scenario_command(sub: Any) -> None:
    p = sub.add_parser("scenario", help="compile and run a TOML scenario (docs/scenarios.md)")
    ssub = p.add_subparsers(dest="scenario_command", required=True, metavar="SUBCOMMAND")
    r = ssub.add_parser("run", help="compile, run and show a scenario's events and final accounts")
    r.add_argument("file", metavar="FILE", help="the scenario TOML file (docs/scenarios.md)")
    r.add_argument("--json", action="store_true", help="print a machine-readable result")
    r.add_argument("--log", default=None, metavar="OUT", help="also keep the signed log at OUT (overwritten)")
    r.set_defaults(func=cli_command(cmd_scenario_run))
    c = ssub.add_parser("compile", help="compile a scenario into a signed log (check it with `clearinghouse verify`)")
    c.add_argument("file", metavar="FILE", help="the scenario TOML file (docs/scenarios.md)")
    c.add_argument("--log", required=True, metavar="OUT", help="where to write the log (overwritten)")
    c.add_argument("--json", action="store_true", help="print the result (or the error) as JSON")
    c.set_defaults(func=cli_command(cmd_scenario_compile))
