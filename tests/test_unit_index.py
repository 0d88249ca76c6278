"""The liquidation index (``spec.waterfall.unit_index``, protocol §12.3's note): what it evaluates,
and how it lives with an engine (derived, kept across abandoned executions, rebuilt on start-up).

Its soundness (it never misses a liquidatable or below-zero unit) is checked before every step 40
and 50 of every test by ``tests/index_audit.py``; these tests check that it does little work.
"""

from __future__ import annotations

import pytest
from helpers import BTC, ETH, Chain, px, sz

from clearinghouse.chain.engine import Engine
from clearinghouse.spec.constants import CROSS
from clearinghouse.spec.state.keys import account_key
from clearinghouse.spec.waterfall.unit_index import UnitIndex
from clearinghouse.spec.waterfall.units import Unit
from tx import actions as A


@pytest.fixture
def chain() -> Chain:
    """alice: long 1 BTC and long 10 ETH on one cross margin; bob and dave: the shorts."""
    c = Chain(pin_marks=True)
    c.fund(alice=25_000, bob=50_000, dave=50_000, mm=100_000)
    c.trade("alice", "bob", BTC, px(90_000), sz(1))
    c.trade("alice", "dave", ETH, px(3_200, ETH), sz(10, ETH))
    c.block()
    return c


def index_of(c: Chain) -> UnitIndex:
    index = c.p.engine.index.margin
    assert isinstance(index, UnitIndex)
    return index


def test_an_idle_block_evaluates_no_unit(chain: Chain) -> None:
    index = index_of(chain)
    assert Unit(chain.addr("alice"), CROSS) in index.bands
    before = index.evaluations
    for _ in range(3):
        chain.block()
    assert index.evaluations == before


def test_a_small_mark_move_evaluates_no_unit_and_a_large_one_only_the_crossed(chain: Chain) -> None:
    index = index_of(chain)
    before = index.evaluations
    chain.move_mark(BTC, px(89_100))  # 1% down: inside every band
    assert index.evaluations == before
    # 22% down: alice's BTC band (90/122 of her slack of about 23,400 USDC: about 17,400 USDC of
    # move) is crossed; she is still healthy (she loses about 19,800 USDC of value minus margin).
    chain.move_mark(BTC, px(70_000))
    alice = Unit(chain.addr("alice"), CROSS)
    assert index.evaluations - before == 1, "only alice's cross unit is re-evaluated"
    assert alice in index.bands and alice not in index.watched


def test_a_touched_unit_is_re_evaluated(chain: Chain) -> None:
    index = index_of(chain)
    before = index.evaluations
    chain.block(chain.deposit_tx("alice", 10))
    assert index.evaluations - before == 1


def test_an_abandoned_execution_keeps_the_index_and_marks_what_it_touched(chain: Chain) -> None:
    engine = chain.p.engine
    index = index_of(chain)
    engine.execute(engine.height + 1, chain.next_time, [chain.deposit_tx("alice", 10)])
    engine.reset_index()
    assert engine.index.margin is index
    assert account_key(chain.addr("alice")) in index.touched
    chain.block()  # the next block re-evaluates alice from committed state (the audit checks it)


def test_an_index_built_inside_an_abandoned_execution_is_dropped(chain: Chain) -> None:
    engine = Engine(chain.p.engine.store)  # a restart: no index until a block needs one
    assert engine.index.margin is None
    engine.execute(engine.height + 1, chain.next_time, [])
    assert engine.index.margin is not None
    engine.reset_index()
    assert engine.index.margin is None


def test_a_restarted_engine_rebuilds_it_and_agrees(chain: Chain) -> None:
    engine = Engine(chain.p.engine.store)
    txs = [chain.tx("alice", A.Withdraw(amount=1, destination=chain.addr("alice")))]
    rebuilt = engine.execute(engine.height + 1, chain.next_time, txs)
    kept = chain.p.engine.execute(chain.p.engine.height + 1, chain.next_time, txs)
    chain.p.engine.reset_index()
    engine.reset_index()
    assert rebuilt.changes == kept.changes and rebuilt.events == kept.events
