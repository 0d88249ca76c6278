"""Which oracle submissions count, and the oracle and external price they give (protocol §11.2).

A publisher's latest submission for a market (``oracle_sub_key``) is *fresh*
while it is younger than the genesis ``oracle_fresh_ms``. The oracle changes
only while more than half of the publishers are fresh; it is then the lower
median over one slot per publisher, a stale publisher's slot holding the
current oracle price (it votes for no change). So no minority of publishers
can move it outside the range of what the others say, whether or not the
others are posting. The external perp price gets the same treatment. Pure
reads: the ``prices`` step (``oracle.py``) and the ``funding`` step (which
takes no premium sample while the oracle is held) both use it.
"""

from __future__ import annotations

from typing import NamedTuple

from clearinghouse.spec.prices.mark_price import lower_median
from clearinghouse.spec.state.access import get_oracle_submission
from clearinghouse.spec.state.records import Chain, OracleSubmission
from clearinghouse.spec.state.working_state import WorkingState


def is_fresh(sub: OracleSubmission, time_ms: int, fresh_ms: int) -> bool:
    """A submission counts while it is younger than the window: ``time_ms - sub.time_ms < fresh_ms``.

    See protocol §11.2.
    """
    return time_ms - sub.time_ms < fresh_ms


def fresh_submissions(ws: WorkingState, chain: Chain, market: int, time_ms: int) -> list[OracleSubmission]:
    """The fresh latest submissions for ``market``, in ascending publisher order (protocol §11.2).

    Cost: one lookup per publisher (at most 16, fixed in genesis).
    """
    out: list[OracleSubmission] = []
    for publisher in sorted(chain.oracle_publishers):
        sub = get_oracle_submission(ws, market, publisher)
        if sub is not None and is_fresh(sub, time_ms, chain.oracle_fresh_ms):
            out.append(sub)
    return out


def has_quorum(fresh: int, publishers: int) -> bool:
    """More than half of the publishers are fresh: ``2 x fresh > publishers`` (protocol §11.2)."""
    return 2 * fresh > publishers


def oracle_is_live(ws: WorkingState, chain: Chain, market: int, time_ms: int) -> bool:
    """Whether ``market``'s oracle has a fresh majority at ``time_ms`` (else it is held; protocol §11.2)."""
    return has_quorum(len(fresh_submissions(ws, chain, market, time_ms)), len(chain.oracle_publishers))


class Aggregate(NamedTuple):
    """The prices step's oracle and external price, and how many publishers were fresh (protocol §11.2)."""

    oracle: int
    external: int
    fresh: int


def aggregate(fresh: list[OracleSubmission], publishers: int, held_oracle: int, held_external: int) -> Aggregate:
    """Oracle and external price from the fresh submissions (protocol §11.2).

    Without a fresh majority (``2 x len(fresh) <= publishers``) both hold.
    Otherwise, with one slot per publisher:

    * oracle = lower median of the fresh oracle prices plus ``held_oracle``
      once for every publisher that is not fresh;
    * external: if more than half of *all* publishers have a fresh non-zero
      external price, the lower median of those plus, for every other
      publisher (stale, or fresh without one), ``held_external`` if non-zero,
      else the new oracle; otherwise 0 (none).

    A minority (fewer than half of the slots) can never place the lower median
    outside the range of the other slots: it moves neither price beyond what
    the rest of the publishers, or the held price, say.
    """
    k = len(fresh)
    if not has_quorum(k, publishers):
        return Aggregate(held_oracle, held_external, k)
    oracle = lower_median([s.oracle_price for s in fresh] + [held_oracle] * (publishers - k))
    externals = [s.external_price for s in fresh if s.external_price > 0]
    if not has_quorum(len(externals), publishers):
        return Aggregate(oracle, 0, k)
    fill = held_external if held_external > 0 else oracle
    return Aggregate(oracle, lower_median(externals + [fill] * (publishers - len(externals))), k)
