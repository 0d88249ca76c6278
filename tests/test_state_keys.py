"""Key layouts (protocol §7.1): what keys.py builds, its parse helpers read back; nothing else slices keys."""

from __future__ import annotations

import pytest

from clearinghouse.spec.state.keys import (
    LiqRefKey,
    account_key,
    agent_key,
    key_account,
    key_market,
    liq_ref_key,
    market_spec_key,
    market_state_key,
    nonces_key,
    oracle_sub_key,
    order_key,
    parse_liq_ref_key,
    position_key,
    position_owner,
    trigger_key,
)

ALICE = bytes(range(1, 21))

MARKET_KEYS = [
    (market_spec_key(7), 7, "protocol 7.1 market spec"),
    (market_state_key(2**32 - 2), 2**32 - 2, "protocol 7.1 market state, widest index"),
    (position_key(3, ALICE), 3, "protocol 7.1 position"),
    (order_key(5, True, 90_000, 12), 5, "protocol 7.1 resting bid"),
    (trigger_key(1, 0, 100, 4), 1, "protocol 7.1 trigger"),
    (oracle_sub_key(9, ALICE), 9, "protocol 7.1 oracle submission"),
]


@pytest.mark.parametrize(("key", "market"), [c[:2] for c in MARKET_KEYS], ids=[c[2] for c in MARKET_KEYS])
def test_key_market(key: bytes, market: int) -> None:
    assert key_market(key) == market


@pytest.mark.parametrize("build", [account_key, nonces_key, agent_key], ids=["account", "nonces", "agent"])
def test_key_account(build: object) -> None:
    assert callable(build)
    assert key_account(build(ALICE)) == ALICE


def test_position_owner_and_liq_ref() -> None:
    assert position_owner(position_key(11, ALICE)) == ALICE
    assert parse_liq_ref_key(liq_ref_key(ALICE, 2**32 - 1, 6)) == LiqRefKey(ALICE, 2**32 - 1, 6)


WRONG = [
    (key_market, account_key(ALICE), "protocol 7.1 an account key has no market"),
    (key_account, position_key(0, ALICE), "protocol 7.1 a position key is not an account key"),
    (position_owner, account_key(ALICE), "protocol 7.1 an account key has no position owner"),
    (parse_liq_ref_key, position_key(0, ALICE), "protocol 7.1 a position key is not a liquidation reference"),
]


@pytest.mark.parametrize(("parse", "key"), [c[:2] for c in WRONG], ids=[c[2] for c in WRONG])
def test_parsers_refuse_other_namespaces(parse: object, key: bytes) -> None:
    assert callable(parse)
    with pytest.raises(ValueError):
        parse(key)


# protocol 7.1: every typed reader of spec.state.access reads a key whose namespace holds exactly the
# record type it returns (the readers do not check each record's type at run time: ``WorkingState.get``
# decodes stored bytes as ``record_type(key)``). Each case: the reader, its arguments after ``ws``, the type.
def _readers() -> list[tuple[str, tuple[object, ...], type]]:
    from clearinghouse.spec.state import records as R
    from clearinghouse.spec.state.keys import order_key, trigger_key
    from tx.messages import MarketSpec

    return [
        ("get_chain", (), R.Chain),
        ("get_market_spec", (3,), MarketSpec),
        ("get_market_state", (3,), R.MarketState),
        ("get_position", (3, ALICE), R.Position),
        ("get_order", (order_key(3, True, 100, 7),), R.Order),
        ("get_trigger", (trigger_key(3, 0, 100, 7),), R.Trigger),
        ("get_order_locator", (7,), R.OrderLocator),
        ("get_cloid_locator", (ALICE, 9), R.CloidLocator),
        ("get_agent", (ALICE,), R.Agent),
        ("get_nonces", (ALICE,), R.NonceSet),
        ("get_oracle_submission", (3, ALICE), R.OracleSubmission),
    ]


class _KeyRecorder:
    """Stands in for the working state: records the key read, returns a sentinel record."""

    def __init__(self) -> None:
        self.keys: list[bytes] = []

    def get(self, key: bytes) -> object:
        self.keys.append(key)
        return object()


@pytest.mark.parametrize(("reader", "args", "kind"), _readers(), ids=[c[0] for c in _readers()])
def test_access_readers_match_record_types(reader: str, args: tuple[object, ...], kind: type) -> None:
    from clearinghouse.spec.state import access
    from clearinghouse.spec.state.keys import record_type

    ws = _KeyRecorder()
    getattr(access, reader)(ws, *args)
    [key] = ws.keys
    assert record_type(key) is kind


def test_every_access_reader_is_covered() -> None:
    import inspect

    from clearinghouse.spec.state import access

    readers = {name for name, fn in inspect.getmembers(access, inspect.isfunction) if name.startswith("get_")}
    readers = {name for name in readers if inspect.getmodule(getattr(access, name)) is access}
    assert readers == {c[0] for c in _readers()}
