"""The band math of the liquidation index (``spec.math.bands``, protocol §12.3): properties.

The index is sound if a unit whose every position is inside its band cannot be liquidatable.
These properties check it against the exact margin arithmetic (``maintenance_margin``), for one
position, for cross units of several markets at once, and for the lazy-funding keys that
``unit_index.market_driver`` documents (value minus ceil(size x dI / SCALE)).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearinghouse.spec.math.bands import Band, adverse_room, band_edge, crossed, loss_bound, split_slack
from clearinghouse.spec.math.integers import ceil_div
from clearinghouse.spec.math.margin import maintenance_margin
from clearinghouse.spec.state.records import Position
from clearinghouse.spec.waterfall.unit_index import MarketDriver, unit_bands
from clearinghouse.spec.waterfall.units import UnitHealth

sizes = st.one_of(st.integers(1, 50), st.integers(1, 10**9))
prices = st.one_of(st.integers(1, 200), st.integers(1, 10**12))
leverages = st.sampled_from([1, 2, 3, 5, 10, 20, 25, 40, 50])
moves = st.one_of(st.integers(-100, 100), st.integers(-(10**12), 10**12))


def mark_keys(mark: int, lev: int) -> MarketDriver:
    return MarketDriver(long_key=(2 * lev - 1) * mark, short_key=(2 * lev + 1) * mark, den=2 * lev, reserve=0)


def excess(size: int, mark: int, lev: int) -> int:
    """A position's value at ``mark`` minus its maintenance margin (cash left out: it does not move)."""
    return size * mark - maintenance_margin(size, mark, lev)


@given(size=sizes, is_long=st.booleans(), mark=prices, lev=leverages, move=moves)
def test_loss_bound_holds_for_any_mark_move(size: int, is_long: bool, mark: int, lev: int, move: int) -> None:
    s = size if is_long else -size
    new = max(1, mark + move)
    d0, d1 = mark_keys(mark, lev), mark_keys(new, lev)
    adverse = d0.long_key - d1.long_key if is_long else d1.short_key - d0.short_key
    loss = excess(s, mark, lev) - excess(s, new, lev)
    assert loss <= loss_bound(size, adverse, d0.den, d0.reserve)


@given(size=sizes, is_long=st.booleans(), mark=prices, lev=leverages, budget=st.integers(0, 10**15), move=moves)
def test_inside_the_band_a_position_loses_at_most_its_budget(
    size: int, is_long: bool, mark: int, lev: int, budget: int, move: int
) -> None:
    s = size if is_long else -size
    d0 = mark_keys(mark, lev)
    room = adverse_room(size, budget, d0.den, d0.reserve)
    assert room is not None and room >= 0
    band = Band(0, is_long, band_edge(is_long, d0.long_key if is_long else d0.short_key, room))
    new = max(1, mark + move)
    d1 = mark_keys(new, lev)
    if not crossed(band, d1.long_key if is_long else d1.short_key):
        assert excess(s, mark, lev) - excess(s, new, lev) <= budget


@given(size=sizes, budget=st.integers(0, 10**15), den=st.integers(1, 10**6), reserve=st.integers(0, 3))
def test_adverse_room_is_the_largest_safe_move(size: int, budget: int, den: int, reserve: int) -> None:
    room = adverse_room(size, budget, den, reserve)
    if budget < reserve:
        assert room is None
        return
    assert room is not None
    assert loss_bound(size, room, den, reserve) <= budget < loss_bound(size, room + 1, den, reserve)


@given(slack=st.integers(0, 10**18), weights=st.lists(st.integers(0, 10**15), min_size=1, max_size=6))
def test_split_slack_never_hands_out_more_than_the_slack(slack: int, weights: list[int]) -> None:
    budgets = split_slack(slack, weights)
    assert len(budgets) == len(weights) and all(b >= 0 for b in budgets) and sum(budgets) <= slack


positions = st.tuples(st.integers(0, 2), st.integers(-(10**6), 10**6).filter(bool), st.integers(1, 10**7), leverages)


@given(
    legs=st.lists(positions, min_size=1, max_size=3, unique_by=lambda t: t[0]),
    cash=st.integers(-(10**13), 10**13),
    moves_=st.tuples(moves, moves, moves),
)
def test_a_cross_unit_inside_all_its_bands_is_not_liquidatable(
    legs: list[tuple[int, int, int, int]], cash: int, moves_: tuple[int, int, int]
) -> None:
    legs = sorted(legs)

    def health(marks: dict[int, int]) -> tuple[int, int]:
        value = cash + sum(s * marks[m] for m, s, _p, _lev in legs)
        return value, sum(maintenance_margin(s, marks[m], lev) for m, s, _p, lev in legs)

    marks0 = {m: p for m, _s, p, _lev in legs}
    value, mm = health(marks0)
    if value < mm:
        return  # liquidatable already: the index watches it, no band
    unit = UnitHealth(
        value=value,
        maintenance=mm,
        positions=[(m, Position(s, 0, 1, True, 0, 0, 0), p, maintenance_margin(s, p, lev)) for m, s, p, lev in legs],
    )
    levs = {m: lev for m, _s, _p, lev in legs}
    bands = unit_bands(unit, {m: mark_keys(marks0[m], levs[m]) for m in marks0})
    marks1 = {m: max(1, marks0[m] + moves_[m]) for m in marks0}
    drivers1 = {m: mark_keys(marks1[m], levs[m]) for m in marks1}
    inside = not any(
        crossed(b, drivers1[b.market].long_key if b.is_long else drivers1[b.market].short_key) for b in bands
    )
    if inside:
        value1, mm1 = health(marks1)
        assert value1 >= mm1, "a unit inside all its bands became liquidatable"


SCALE = 10**9


def funding_keys(mark: int, index: int, lev: int) -> MarketDriver:
    """The keys ``market_driver`` documents for a lazy funding index (value -= ceil(s x dI / SCALE))."""
    return MarketDriver(
        long_key=(2 * lev - 1) * SCALE * mark - 2 * lev * index,
        short_key=(2 * lev + 1) * SCALE * mark - 2 * lev * index,
        den=2 * lev * SCALE,
        reserve=1,
    )


@given(
    size=sizes,
    is_long=st.booleans(),
    mark=prices,
    lev=leverages,
    entry=st.integers(-(10**15), 10**15),
    index0=st.integers(-(10**15), 10**15),
    move=moves,
    index_move=st.one_of(st.integers(-(10**6), 10**6), st.integers(-(10**15), 10**15)),
    budget=st.integers(0, 10**15),
)
def test_funding_keys_documented_for_the_merge_are_sound(
    size: int, is_long: bool, mark: int, lev: int, entry: int, index0: int, move: int, index_move: int, budget: int
) -> None:
    s = size if is_long else -size

    def excess_f(p: int, idx: int) -> int:
        return s * p - ceil_div(s * (idx - entry), SCALE) - maintenance_margin(s, p, lev)  # owed rounded up

    new, index1 = max(1, mark + move), index0 + index_move
    d0, d1 = funding_keys(mark, index0, lev), funding_keys(new, index1, lev)
    adverse = d0.long_key - d1.long_key if is_long else d1.short_key - d0.short_key
    assert excess_f(mark, index0) - excess_f(new, index1) <= loss_bound(size, adverse, d0.den, d0.reserve)
    room = adverse_room(size, budget, d0.den, d0.reserve)
    if room is None:
        return
    band = Band(0, is_long, band_edge(is_long, d0.long_key if is_long else d0.short_key, room))
    if not crossed(band, d1.long_key if is_long else d1.short_key):
        assert excess_f(mark, index0) - excess_f(new, index1) <= budget


def test_market_driver_is_the_funding_form_at_the_market_index() -> None:
    """The keys the index uses are the lazy-funding keys at the market state's funding index, before
    and after the index moves."""
    from clearinghouse.spec.block import apply_genesis
    from clearinghouse.spec.state.keys import market_spec_key, market_state_key
    from clearinghouse.spec.state.working_state import KeyIndex, WorkingState
    from clearinghouse.spec.waterfall.unit_index import market_driver
    from clearinghouse.tools.demo import demo_genesis
    from state import MemoryStore

    ws = WorkingState(MemoryStore(), KeyIndex())
    apply_genesis(ws, demo_genesis())
    import msgspec

    for step in (0, 123_456_789_000, -987_654_321):
        for m in (0, 1):
            state = ws.get(market_state_key(m))
            if step:
                state = msgspec.structs.replace(state, funding_index=state.funding_index + step)
                ws.put(market_state_key(m), state)
            lev = ws.get(market_spec_key(m)).max_leverage
            assert market_driver(ws, m) == funding_keys(state.mark_price, state.funding_index, lev)


@pytest.mark.parametrize(
    ("band", "key", "expected"),
    [
        (Band(0, True, 100), 100, False),
        (Band(0, True, 100), 99, True),
        (Band(0, False, 100), 100, False),
        (Band(0, False, 100), 101, True),
        (Band(0, True, None), 10**9, True),
    ],
    ids=["long-at-edge", "long-below", "short-at-edge", "short-above", "no-band"],
)
def test_crossed_at_the_edges(band: Band, key: int, expected: bool) -> None:
    assert crossed(band, key) is expected
