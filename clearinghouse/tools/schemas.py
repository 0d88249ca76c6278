"""JSON Schemas (draft 2020-12) of every ``--json`` output and every export record.

``clearinghouse schema`` lists them; ``clearinghouse schema NAME`` prints one. The
tests validate real outputs against them (tests/test_tool_schemas.py), so a schema
is a promise: the named fields are present with these types. Outputs may grow new
fields (objects allow additional properties) except the Hyperliquid-shaped export
records, whose field sets are exactly Hyperliquid's (docs/exports.md).
"""

from __future__ import annotations

from typing import Any

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://clearinghouse.invalid/schemas/"

# ---------------------------------------------------------------- building blocks
INT: dict[str, Any] = {"type": "integer"}
BOOL: dict[str, Any] = {"type": "boolean"}
STR: dict[str, Any] = {"type": "string"}
DEC: dict[str, Any] = {
    "type": "string",
    "pattern": r"^-?[0-9][0-9,]*(\.[0-9]+)?$",
    "description": "an exact decimal string",
}
HL_DEC: dict[str, Any] = {
    "type": "string",
    "pattern": r"^-?[0-9]+\.[0-9]+$",
    "description": "a decimal string as Hyperliquid writes it",
}
ADDR: dict[str, Any] = {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}
HEX32: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
HASH: dict[str, Any] = {"type": "string", "pattern": "^0x[0-9a-f]{64}$"}


def nullable(s: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [s, {"type": "null"}]}


def obj(
    props: dict[str, Any], *, required: list[str] | None = None, extra: bool = True, title: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": sorted(props if required is None else required),
        "additionalProperties": extra,
    }
    if title:
        out["title"] = title
    return out


def arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


# ---------------------------------------------------------------- CLI outputs
ERROR = obj(
    {"ok": {"const": False}, "error": obj({"code": STR, "message": STR, "exit_code": INT}, extra=False)},
    title="Any command's failure under --json",
)

SUMMARY_ACCOUNT = obj(
    {
        "address": ADDR,
        "name": STR,
        "cash": INT,
        "cash_usdc": DEC,
        "value": INT,
        "value_usdc": DEC,
        "positions": INT,
        "open_orders": INT,
    }
)
SUMMARY = obj(
    {
        "log": STR,
        "db": nullable(STR),
        "height": INT,
        "state_root": HEX32,
        "blocks": INT,
        "blocks_applied": INT,
        "blocks_skipped": INT,
        "txs": INT,
        "rejected": INT,
        "rejected_by_code": {"type": "object", "additionalProperties": INT},
        "events": {"type": "object", "additionalProperties": INT},
        "fills": INT,
        "transfers": {"type": "integer", "description": "position transfers (backstop, ADL, deficit cover)"},
        "funding_payments": INT,
        "liquidations": INT,
        "liquidation_fills": INT,
        "insurance_covers": INT,
        "backstops": INT,
        "adl_fills": {"type": "integer", "description": "ADL and deficit-cover position transfers"},
        "account_count": INT,
        "accounts": arr(SUMMARY_ACCOUNT),
    },
    title="demo / replay summary",
)

VERIFY = {
    "title": "verify",
    "oneOf": [
        dict(
            SUMMARY,
            properties=dict(SUMMARY["properties"], ok={"const": True}),
            required=SUMMARY["required"] + ["ok"],
            title="verify: every root reproduced",
        ),
        obj(
            {
                "ok": {"const": False},
                "log": STR,
                "height": INT,
                "what": STR,
                "tx_index": nullable(INT),
                "differing_keys": arr(STR),
                "error": STR,
            },
            title="verify: a block does not reproduce",
        ),
        obj(
            {
                "ok": {"const": False},
                "height": INT,
                "state_root": HEX32,
                "problems": arr(STR),
                "expected": {"type": "object"},
            },
            title="verify: --expect-height / --expect-root not met",
        ),
    ],
}

PROOF = obj(
    {
        "key": {"type": "string"},
        "value": nullable(STR),
        "proof": {"type": "object"},
        "verified": BOOL,
        "kind": {"enum": ["inclusion", "non-inclusion"]},
    }
)
INSPECT_POSITION = obj(
    {
        "market": INT,
        "coin": STR,
        "size": INT,
        "size_base": DEC,
        "cost": INT,
        "cost_usdc": DEC,
        "leverage": INT,
        "is_cross": BOOL,
        "margin_mode": {"enum": ["cross", "isolated"]},
        "iso_cash": INT,
        "iso_cash_usdc": DEC,
        "mark_price": INT,
        "mark_price_usdc": DEC,
        "entry_price_usdc": nullable(DEC),
        "position_value": INT,
        "position_value_usdc": DEC,
        "unrealized_pnl": INT,
        "unrealized_pnl_usdc": DEC,
        "return_on_equity": nullable(DEC),
        "liquidation_price_usdc": nullable(DEC),
        "margin_used": INT,
        "margin_used_usdc": DEC,
        "maintenance_margin": INT,
        "maintenance_margin_usdc": DEC,
        "adl": nullable({"type": "object"}),
    }
)
_MONEY = (
    "value",
    "maintenance_margin",
    "initial_margin",
    "account_value",
    "margin_used",
    "withdrawable",
    "total_notional",
)
INSPECT = obj(
    {
        "address": ADDR,
        "name": nullable(STR),
        "height": INT,
        "state_root": HEX32,
        "exists": BOOL,
        "cash": INT,
        "cash_usdc": DEC,
        "open_orders": INT,
        "positions": arr(INSPECT_POSITION),
        "proof": PROOF,
        "position_proofs": arr(PROOF),
        **{k: INT for k in _MONEY},
        **{k + "_usdc": DEC for k in _MONEY},
    },
    required=["address", "name", "height", "state_root", "exists", "cash", "cash_usdc", "open_orders", "positions"],
    title="inspect",
)

DIFF = obj(
    {
        "same": BOOL,
        "a": obj({"db": STR, "height": INT, "root": HEX32}),
        "b": obj({"db": STR, "height": INT, "root": HEX32}),
        "namespaces": arr(obj({"namespace": STR, "a": nullable(arr({})), "b": nullable(arr({})), "same": BOOL})),
        "differences": arr(obj({"key": STR, "key_name": STR, "key_hex": STR, "a": {}, "b": {}})),
    },
    title="diff",
)

AUDIT = obj(
    {
        "db": STR,
        "height": INT,
        "state_root": HEX32,
        "ok": BOOL,
        "violations": arr(STR),
        "deep": obj(
            {
                "records": INT,
                "recomputed_root": HEX32,
                "stored_root": HEX32,
                "header_root": nullable(HEX32),
                "tree_leaves": INT,
                "first_bad_key": nullable(obj({"key": STR, "key_hex": STR, "problem": STR})),
                "bad_keys": arr({"type": "object"}),
                "problems": arr(STR),
            }
        ),
    },
    required=["db", "height", "state_root", "ok", "violations"],
    title="audit",
)

EXPLAIN = obj(
    {
        "account": ADDR,
        "name": nullable(STR),
        "height": nullable(INT),
        "nothing_happened": BOOL,
        "source": STR,
        "source_kind": {"enum": ["log", "lmdb"]},
        "chain_height": INT,
        "policy": STR,
        "incidents": arr(
            obj(
                {
                    "height": INT,
                    "time_ms": nullable(INT),
                    "role": STR,
                    "text": arr(STR),
                    "events": arr({"type": "object"}),
                },
                required=["height", "role", "text"],
            )
        ),
    },
    required=[
        "account",
        "name",
        "height",
        "incidents",
        "nothing_happened",
        "source",
        "source_kind",
        "chain_height",
        "policy",
    ],
    title="explain",
)

SCENARIO_RUN = obj(
    {
        "scenario": STR,
        "ok": BOOL,
        "height": INT,
        "state_root": HEX32,
        "policy": STR,
        "chain_id": INT,
        "markets": arr(obj({"index": INT, "name": STR, "sz_decimals": INT})),
        "accounts": {
            "type": "object",
            "additionalProperties": obj(
                {"address": ADDR, "cash": INT, "cash_usdc": DEC, "value": INT, "value_usdc": DEC},
                required=["address", "cash", "cash_usdc"],
            ),
        },
        "blocks": arr(
            obj({"height": INT, "time_ms": INT, "events": arr({"type": "object"})}, required=["height", "events"])
        ),
        "expects": arr(obj({"ok": BOOL, "step": INT, "message": STR}, required=["ok"])),
        "summary": {"type": "object", "additionalProperties": INT},
    },
    required=["scenario", "ok", "height", "state_root", "accounts", "blocks", "expects", "summary"],
    title="scenario run",
)

SCENARIO_COMPILE = obj(
    {
        "scenario": STR,
        "log": nullable(STR),
        "height": INT,
        "state_root": HEX32,
        "blocks": INT,
        "expects_passed": INT,
        "expects_failed": INT,
    },
    title="scenario compile",
)

SNAPSHOT = obj(
    {
        "snapshot": STR,
        "height": INT,
        "state_root": HEX32,
        "genesis_hash": HEX32,
        "records": INT,
        "bytes": INT,
        "checksum": HEX32,
    },
    title="snapshot",
)

NUM: dict[str, Any] = {"type": "number"}
VERIFY_SEGMENTS = obj(
    {
        "ok": BOOL,
        "log": STR,
        "height": INT,
        "state_root": {"type": ["string", "null"]},
        "blocks": INT,
        "txs": INT,
        "rejected": INT,
        "workers": INT,
        "engine": STR,
        "wall_seconds": NUM,
        "cpu_seconds": NUM,
        "segments": arr(
            obj({"index": INT, "start": INT, "end": INT, "ok": BOOL}, required=["index", "start", "end", "ok"])
        ),
    },
    required=["ok", "log", "height", "segments"],
    title="verify --snapshots (segments)",
)

# ---------------------------------------------------------------- exports (exactly Hyperliquid's fields)
LIQUIDATION = obj(
    {"liquidatedUser": ADDR, "markPx": nullable(HL_DEC), "method": {"enum": ["market", "backstop"]}}, extra=False
)
FILL_PROPS = {
    "coin": STR,
    "px": HL_DEC,
    "sz": HL_DEC,
    "side": {"enum": ["B", "A"]},
    "time": nullable(INT),
    "startPosition": HL_DEC,
    "dir": {
        "enum": [
            "Open Long",
            "Open Short",
            "Close Long",
            "Close Short",
            "Long > Short",
            "Short > Long",
            "Auto-Deleveraging",
            "Liquidated Cross Long",
            "Liquidated Cross Short",
            "Liquidated Isolated Long",
            "Liquidated Isolated Short",
        ]
    },
    "closedPnl": HL_DEC,
    "hash": HASH,
    "oid": INT,
    "crossed": BOOL,
    "fee": HL_DEC,
    "tid": INT,
    "feeToken": {"const": "USDC"},
    "liquidation": LIQUIDATION,
    "user": ADDR,
}
EXPORT_FILL = obj(
    FILL_PROPS,
    required=sorted(set(FILL_PROPS) - {"liquidation", "user"}),
    extra=False,
    title="export fills: Hyperliquid userFills record (+ user without --user)",
)

CUM_FUNDING = obj({"allTime": HL_DEC, "sinceOpen": HL_DEC, "sinceChange": HL_DEC}, extra=False)
HL_SUMMARY = obj(
    {"accountValue": HL_DEC, "totalNtlPos": HL_DEC, "totalRawUsd": HL_DEC, "totalMarginUsed": HL_DEC}, extra=False
)
EXPORT_STATE = obj(
    {
        "marginSummary": HL_SUMMARY,
        "crossMarginSummary": HL_SUMMARY,
        "crossMaintenanceMarginUsed": HL_DEC,
        "withdrawable": HL_DEC,
        "time": nullable(INT),
        "assetPositions": arr(
            obj(
                {
                    "type": {"const": "oneWay"},
                    "position": obj(
                        {
                            "coin": STR,
                            "szi": HL_DEC,
                            "entryPx": HL_DEC,
                            "positionValue": HL_DEC,
                            "unrealizedPnl": HL_DEC,
                            "returnOnEquity": HL_DEC,
                            "liquidationPx": nullable(HL_DEC),
                            "leverage": obj(
                                {"type": {"enum": ["cross", "isolated"]}, "value": INT, "rawUsd": HL_DEC},
                                required=["type", "value"],
                                extra=False,
                            ),
                            "marginUsed": HL_DEC,
                            "maxLeverage": INT,
                            "cumFunding": CUM_FUNDING,
                        },
                        extra=False,
                    ),
                },
                extra=False,
            )
        ),
    },
    extra=False,
    title="export state: Hyperliquid clearinghouseState",
)

EXPORT_FUNDING = obj(
    {
        "time": nullable(INT),
        "hash": HASH,
        "user": ADDR,
        "delta": obj(
            {
                "type": {"const": "funding"},
                "coin": STR,
                "usdc": HL_DEC,
                "szi": HL_DEC,
                "fundingRate": DEC,
                "nSamples": INT,
            },
            extra=False,
        ),
    },
    required=["time", "hash", "delta"],
    extra=False,
    title="export funding: Hyperliquid userFunding record (+ user without --user)",
)

EXPORT_LEDGER = obj(
    {
        "time": nullable(INT),
        "hash": HASH,
        "user": ADDR,
        "delta": obj(
            {
                "type": {
                    "enum": [
                        "deposit",
                        "withdraw",
                        "internalTransfer",
                        "funding",
                        "fee",
                        "liquidation",
                        "insuranceCover",
                        "fundingResidue",
                        "genesisFund",
                        "deficitCover",
                        "haircut",
                    ]
                },
                "usdc": HL_DEC,
            }
        ),
    },
    required=["time", "hash", "delta"],
    extra=False,
    title="export ledger record (+ user without --user)",
)

EXPORT_LIQUIDATION = obj(
    {"height": INT, "time": nullable(INT), "event_index": INT, "type": STR},
    title="export liquidations: one waterfall event with its evidence",
)

GENERATE = obj(
    {
        "log": STR,
        "blocks": INT,
        "txs": INT,
        "bytes": INT,
        "seconds": NUM,
        "txs_per_second": nullable(NUM),
        "state_root": HEX32,
        "rejected": INT,
        "liquidations": INT,
        "backstops": INT,
        "adl_fills": INT,
        "workers": INT,
    },
    title="generate: the log written (docs/adl-lab.md, clearinghouse generate)",
)

FRACTION = nullable(obj({"num": STR, "den": STR, "decimal": DEC}, title="an exact fraction with a rounded decimal"))
_WAVE_FIGURES = {
    "first_height": nullable(INT),
    "last_height": nullable(INT),
    "start_ms": nullable(INT),
    "end_ms": nullable(INT),
    "blocks": INT,
    "deficit": INT,
    "budget": INT,
    "haircut": INT,
    "overshoot": INT,
    "accounts_hit": INT,
    "counterparties": INT,
    "adl_fills": INT,
    "notional_closed": INT,
    "largest_haircut_share": FRACTION,
    "gini": FRACTION,
    "fund_before": nullable(INT),
    "fund_after": nullable(INT),
    "bad_debt_left": nullable(INT),
}
WHATIF = obj(
    {
        "log": STR,
        "genesis_policy": STR,
        "gap_ms": INT,
        "policies": arr(STR),
        "units": STR,
        "results": {
            "type": "object",
            "additionalProperties": obj(
                {
                    "mode": {"enum": ["verified", "counterfactual"]},
                    "final_state_root": HEX32,
                    "height": INT,
                    "fund_path": arr(arr(INT)),
                    "baseline": obj({"final_state_root": HEX32, "bad_debt_left": INT, "shared_with": arr(STR)}),
                    "waves": arr(obj({**_WAVE_FIGURES, "wave": INT})),
                    "total": obj({**_WAVE_FIGURES, "waves": INT}),
                }
            ),
        },
    },
    required=["log", "genesis_policy", "gap_ms", "policies", "results"],
    title="whatif: ADL figures per policy, per wave and in total (docs/adl-lab.md)",
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "error": ERROR,
    "demo": SUMMARY,
    "replay": SUMMARY,
    "verify": VERIFY,
    "inspect": INSPECT,
    "diff": DIFF,
    "audit": AUDIT,
    "explain": EXPLAIN,
    "scenario-run": SCENARIO_RUN,
    "scenario-compile": SCENARIO_COMPILE,
    "snapshot": SNAPSHOT,
    "verify-segments": VERIFY_SEGMENTS,
    "export-fills": EXPORT_FILL,
    "export-state": EXPORT_STATE,
    "export-funding": EXPORT_FUNDING,
    "export-ledger": EXPORT_LEDGER,
    "export-liquidations": EXPORT_LIQUIDATION,
    "generate": GENERATE,
    "whatif": WHATIF,
}
"""Schema name -> schema. Export schemas describe one JSON Lines record."""


def schema(name: str) -> dict[str, Any]:
    """The complete schema document for ``name`` (with ``$schema`` and ``$id``)."""
    body = dict(SCHEMAS[name])
    return {"$schema": DRAFT, "$id": BASE_ID + name + ".json", **body}


def cmd_schema(args: Any) -> int:
    import json
    import sys

    from clearinghouse.tools.console import EXIT_OK, CliError

    if args.name is None:
        for name in SCHEMAS:
            title = SCHEMAS[name].get("title", "")
            print(f"{name:22s} {title}")
        return EXIT_OK
    if args.name not in SCHEMAS:
        import difflib

        close = difflib.get_close_matches(args.name, list(SCHEMAS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; one of {', '.join(SCHEMAS)}"
        raise CliError(f"no schema named {args.name!r}{hint}", error_code="UNKNOWN_SCHEMA")
    sys.stdout.write(json.dumps(schema(args.name), indent=2, sort_keys=True) + "\n")
    return EXIT_OK


def add_schema_command(sub: Any) -> None:
    from clearinghouse.tools.console import cli_command

    p = sub.add_parser("schema", help="print the JSON Schema of a --json output or export record (no NAME: list them)")
    p.add_argument("name", nargs="?", default=None, metavar="NAME", help="a schema name: " + ", ".join(SCHEMAS))
    p.set_defaults(func=cli_command(cmd_schema), json=False)
