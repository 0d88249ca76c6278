"""Account names: resolve ``alice`` or ``0x...`` to an address, name addresses in output.

Known names come from the demo, the system accounts, a scenario file (``--scenario``)
and a names file (``--names``): JSON ``{"name": "0xaddress"}`` (either way round) or
lines ``name 0xaddress``. A name that is not known but is a test key (``Signer.from_name``)
whose account exists is accepted too; anything else is an error that lists close matches
(exit 1), so a typo never reads as "nothing happened".
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable
from typing import Any

from clearinghouse.spec.state.keys import FEE_POOL, INSURANCE_FUND
from tx.signing import Signer, checksum_address, parse_address

SYSTEM_NAMES = {INSURANCE_FUND: "insurance_fund", FEE_POOL: "fee_pool"}
"""Names of the reserved system accounts (usable wherever a name is accepted)."""
SYSTEM_ALIASES = {
    "insurance_fund": INSURANCE_FUND,
    "insurance-fund": INSURANCE_FUND,
    "fund": INSURANCE_FUND,
    "fee_pool": FEE_POOL,
    "fee-pool": FEE_POOL,
}


class UnknownName(Exception):
    """A name that matches no known account; the message lists close matches."""


def demo_names() -> dict[str, bytes]:
    from clearinghouse.tools.demo import DEMO_NAMES

    return {n: Signer.from_name(n).address for n in DEMO_NAMES}


def system_names() -> dict[str, bytes]:
    return dict(SYSTEM_ALIASES)


def read_names_file(path: str) -> dict[str, bytes]:
    """name -> address from a JSON object or ``name address`` lines."""
    if not os.path.isfile(path):
        raise UnknownName(f"no such names file: {path}")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out: dict[str, bytes] = {}
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    pairs: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        pairs = [(str(k), str(v)) for k, v in obj.items()]
    else:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.replace(",", " ").split()
            if len(parts) != 2:
                raise UnknownName(f"{path}: each line must be 'name 0xaddress', got {line!r}")
            pairs.append((parts[0], parts[1]))
    for a, b in pairs:
        name, addr = (b, a) if a.lower().startswith("0x") else (a, b)
        try:
            out[name] = parse_address(addr)
        except ValueError as exc:
            raise UnknownName(f"{path}: bad address for {name!r}: {exc}") from None
    return out


def known_names(
    *, names: str | None = None, scenario: dict[str, bytes] | None = None, include_demo: bool = True
) -> dict[str, bytes]:
    """Every name a command should understand: system accounts, the demo's, a scenario's (``scenario``:
    name -> address, from ``scenario.parse.scenario_names``), a names file's."""
    out = system_names()
    if include_demo:
        out.update(demo_names())
    if scenario:
        out.update(scenario)
    if names:
        if os.path.isfile(names) or os.sep in names or names.endswith((".json", ".txt")):
            out.update(read_names_file(names))
        else:  # a comma-separated list of test-key names (explain's original --names form)
            for n in names.split(","):
                n = n.strip()
                if n:
                    out[n] = Signer.from_name(n).address
    return out


def resolve(text: str, known: dict[str, bytes], exists: Callable[[bytes], bool]) -> tuple[bytes, str | None]:
    """(address, name) for a 0x address or a name; UnknownName with close matches otherwise."""
    if text.lower().startswith("0x"):
        try:
            addr = parse_address(text)
        except ValueError as exc:
            raise UnknownName(f"bad address {text!r}: {exc}") from None
        name = next((n for n, a in known.items() if a == addr), None)
        return addr, name
    if text in known:
        return known[text], text
    if text:
        derived = Signer.from_name(text).address
        if exists(derived):
            return derived, text
    close = difflib.get_close_matches(text, sorted(known), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; give a 0x address, --scenario FILE or --names FILE"
    raise UnknownName(f"unknown account {text!r}{hint}")


def labels(known: dict[str, bytes]) -> dict[bytes, str]:
    """address -> name (the first name given for an address wins)."""
    out: dict[bytes, str] = {}
    for name, addr in known.items():
        out.setdefault(addr, name)
    return out


def short(addr: bytes) -> str:
    text = checksum_address(addr)
    return text[:6] + "…" + text[-4:]


def who(addr: bytes, names: dict[bytes, str]) -> str:
    name = names.get(addr)
    return name if name else checksum_address(addr)


def add_name_args(p: Any) -> None:
    p.add_argument(
        "--names",
        default=None,
        metavar="FILE_OR_LIST",
        help="a names file (JSON {name: address} or 'name address' lines) or a comma-separated list of test-key names",
    )
    p.add_argument("--scenario", default=None, metavar="FILE", help="take account names from this scenario file")
