"""Issue 11, packaging and docs: version, typing marker, licence, changelog, compatible dependency ranges,
help for every argument, figures after the run rather than among the dots, and docs that match the code.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import subprocess_env
from test_tool_safety import run_cli

import clearinghouse

ROOT = Path(__file__).resolve().parent.parent


def test_version() -> None:
    assert re.match(r"^\d+\.\d+\.\d+", clearinghouse.__version__)
    proc = subprocess.run(
        [sys.executable, "-m", "clearinghouse.tools.cli", "--version"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"clearinghouse {clearinghouse.__version__}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" in project["dynamic"]
    assert f"## {clearinghouse.__version__}" in (ROOT / "CHANGELOG.md").read_text()


def test_typing_marker_licence_and_package_data() -> None:
    for pkg in ("clearinghouse", "state", "tx"):
        assert (ROOT / pkg / "py.typed").is_file()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT"
    # Every package folder ships: the include patterns find each one (spec/, chain/, tools/ and below).
    from setuptools import find_packages

    found = set(find_packages(str(ROOT), include=pyproject["tool"]["setuptools"]["packages"]["find"]["include"]))
    folders = {
        ".".join(d.relative_to(ROOT).parts)
        for pkg in ("clearinghouse", "state", "tx")
        for d in [ROOT / pkg, *(ROOT / pkg).rglob("*")]
        if (d / "__init__.py").is_file() and "__pycache__" not in d.parts
    }
    assert folders and folders <= found, sorted(folders - found)
    assert any("*.js" in p for p in pyproject["tool"]["setuptools"]["package-data"]["clearinghouse.tools"])


def test_dependencies_are_ranges_not_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        assert "==" not in dep, f"{dep}: an exact pin (use a compatible range; see the comment in pyproject.toml)"
        assert re.search(r">=", dep) and re.search(r"<", dep), dep
    test_extra = project["optional-dependencies"]["test"]
    assert any(d.startswith("jsonschema") for d in test_extra) and any(d.startswith("playwright") for d in test_extra)


def test_every_argument_has_help() -> None:
    from clearinghouse.tools.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, path + [name])
                    if not any(a.dest == name and a.help for a in action._choices_actions):
                        missing.append(" ".join(path + [name]) + " (command)")
            elif action.dest != "help" and not action.help:
                missing.append(" ".join(path) + " " + "/".join(action.option_strings or [action.dest]))

    walk(build_parser(), [])
    assert missing == []


def test_figures_come_after_the_dots(tmp_path: Path) -> None:
    """A test printing its figures under capsys.disabled() no longer writes among pytest's progress dots."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / "test_crash_recovery.py"),
            "-k",
            "report_kills",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=subprocess_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(".")  # the dots line holds only progress
    assert "[crash recovery]" not in lines[0]
    section = next(i for i, line in enumerate(lines) if "clearinghouse figures" in line)
    assert any("[crash recovery]" in line for line in lines[section:])


def test_scenarios_doc_crash_example_states_what_happens(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "scenarios.md").read_text()
    start = text.index("## A crash, explained")
    toml = text[text.index("```toml", start) + len("```toml") :]
    toml = toml[: toml.index("```")]
    (tmp_path / "crash.toml").write_text(toml)
    rc, out, err = run_cli(["scenario", "run", tmp_path / "crash.toml", "--json", "--log", tmp_path / "crash.log"])
    assert rc == 0, err
    import json

    report = json.loads(out)
    assert report["prices"]["BTC"]["mark_usdc"] == "85000" and report["prices"]["BTC"]["oracle_usdc"] == "86000"
    assert report["accounts"]["bob"]["value_usdc"] == "101946" and report["accounts"]["alice"]["value_usdc"] == "0"
    outcome = text[start : text.index("## `explain`")]
    for figure in ("85,000", "86,000", "-3,040.5", "850 USDC", "88,040.5", "+1,959.5"):
        assert figure in outcome, figure
    rc, out, _err = run_cli(["explain", tmp_path / "crash.log", "--account", "bob", "--json"])
    incident = json.loads(out)["incidents"][0]
    assert any("+1,959.5" in line for line in incident["text"])
    # The oracle step sets the oracle; the doc no longer says it sets the mark.
    assert "so the new oracle (and mark) price" not in text and "sets the **oracle**, not the mark" in text
