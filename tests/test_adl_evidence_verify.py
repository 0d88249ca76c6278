"""A verifier re-derives every liquidation and ADL step: changing any input of the demo's
ADL (an oracle price, a position-opening order, the events root itself) makes verify fail
at the block where the evidence no longer reproduces, and explain shows the ranking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clearinghouse.chain.engine import Engine, replay_log
from clearinghouse.tools.cli import main
from clearinghouse.tools.demo import build_demo_log
from state import MemoryStore
from tx.actions import OraclePrice, OracleUpdate, PlaceOrder
from tx.builder import sign_transaction
from tx.encoding import decode_canonical, decode_transaction, encode
from tx.logfile import FRAME_BLOCK, encode_frame, encode_header, read_log
from tx.messages import LogBlock
from tx.signing import Signer, recover_signer, signing_digest


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, int]:
    """The demo log and the height of its ADL block."""
    path = tmp_path_factory.mktemp("demo") / "demo.log"
    build_demo_log(path)
    found = []

    def spot(entry, executed):
        if any(type(e).__name__ == "AdlQueue" for e in executed.events):
            found.append(entry.block.header.height)

    replay_log(Engine(MemoryStore()), str(path), on_block=spot)
    assert len(found) == 1
    return path, found[0]


def signer_of(tx) -> bytes:
    return recover_signer(signing_digest(1337, tx.nonce, encode(tx.action)), tx.signature)


def rewrite(path: Path, out: Path, height: int, change) -> None:
    """Copy the log, passing block ``height``'s LogBlock through ``change`` (frames re-checksummed)."""
    frames = []
    for f in read_log(path):
        payload = f.payload
        if f.kind == FRAME_BLOCK:
            entry = decode_canonical(payload, LogBlock)
            if entry.block.header.height == height:
                payload = encode(change(entry))
        frames.append(encode_frame(f.kind, payload))
    out.write_bytes(encode_header() + b"".join(frames))


def verify_json(path: Path, capsys) -> tuple[int, dict]:
    rc = main(["verify", str(path), "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_a_resigned_oracle_price_in_the_adl_block_fails_verification(demo, tmp_path, capsys) -> None:
    """The ADL's input price changes by one unit, the transaction is validly re-signed: the tx root
    no longer matches the header, so the block is rejected."""
    path, h = demo
    signer = Signer.from_name("oracle-1")

    def change(entry: LogBlock) -> LogBlock:
        txs = list(entry.block.txs)
        for i, raw in enumerate(txs):
            tx = decode_transaction(raw)
            if isinstance(tx.action, OracleUpdate):
                prices = [
                    OraclePrice(market=p.market, oracle_price=p.oracle_price + 1, external_price=p.external_price)
                    for p in tx.action.prices
                ]
                # Re-signed by a genuine publisher key, with a fresh nonce: a valid transaction.
                txs[i] = sign_transaction(signer, 1337, OracleUpdate(prices=prices), tx.nonce + 7)
                break
        block = type(entry.block)(header=entry.block.header, txs=txs)
        return LogBlock(block=block, witness=entry.witness)

    bad = tmp_path / "bad.log"
    rewrite(path, bad, h, change)
    rc, report = verify_json(bad, capsys)
    assert rc == 1 and report["height"] == h and report["what"] == "tx_root"


def test_a_consistent_forgery_still_fails_on_the_events_and_state_roots(demo, tmp_path, capsys) -> None:
    """A forger who also recomputes the tx root (a block whose header claims the altered txs)
    is caught by the events root: the replayed ADL evidence differs from the header's."""
    from tx.merkle import ordered_root

    path, h = demo
    signer = Signer.from_name("oracle-1")

    def change(entry: LogBlock) -> LogBlock:
        txs = list(entry.block.txs)
        for i, raw in enumerate(txs):
            tx = decode_transaction(raw)
            if isinstance(tx.action, OracleUpdate):
                prices = [
                    OraclePrice(
                        market=p.market,
                        oracle_price=p.oracle_price - 1_000_000,
                        external_price=p.external_price - 1_000_000,
                    )
                    for p in tx.action.prices
                ]
                txs[i] = sign_transaction(signer, 1337, OracleUpdate(prices=prices), tx.nonce + 7)
        header = entry.block.header
        forged = type(header)(
            height=header.height,
            time_ms=header.time_ms,
            parent_hash=header.parent_hash,
            tx_root=ordered_root(txs),
            state_root=header.state_root,
            events_root=header.events_root,
        )
        return LogBlock(block=type(entry.block)(header=forged, txs=txs), witness=entry.witness)

    bad = tmp_path / "forged.log"
    rewrite(path, bad, h, change)
    rc, report = verify_json(bad, capsys)
    assert rc == 1 and report["height"] == h and report["what"] in ("events_root", "state_root")


def test_changing_one_byte_of_the_adl_blocks_events_root_fails(demo, tmp_path, capsys) -> None:
    path, h = demo

    def change(entry: LogBlock) -> LogBlock:
        header = entry.block.header
        root = bytearray(header.events_root)
        root[0] ^= 1
        forged = type(header)(
            height=header.height,
            time_ms=header.time_ms,
            parent_hash=header.parent_hash,
            tx_root=header.tx_root,
            state_root=header.state_root,
            events_root=bytes(root),
        )
        return LogBlock(block=type(entry.block)(header=forged, txs=entry.block.txs), witness=entry.witness)

    bad = tmp_path / "events.log"
    rewrite(path, bad, h, change)
    rc, report = verify_json(bad, capsys)
    assert rc == 1 and report["height"] == h and report["what"] == "events_root"


def test_an_earlier_order_that_built_an_adl_position_changes_the_adl_block(demo, tmp_path, capsys) -> None:
    """Re-sign frank's opening order one lot smaller (a consistent, signed change at an earlier
    height, with a recomputed tx root): verification fails at that earlier height."""
    from tx.merkle import ordered_root

    path, _h = demo
    frank = Signer.from_name("frank")
    target = None
    for f in read_log(path):
        if f.kind != FRAME_BLOCK:
            continue
        entry = decode_canonical(f.payload, LogBlock)
        for raw in entry.block.txs:
            tx = decode_transaction(raw)
            if isinstance(tx.action, PlaceOrder) and signer_of(tx) == frank.address:
                target = entry.block.header.height
    assert target is not None

    def change(entry: LogBlock) -> LogBlock:
        txs = list(entry.block.txs)
        for i, raw in enumerate(txs):
            tx = decode_transaction(raw)
            a = tx.action
            if isinstance(a, PlaceOrder) and signer_of(tx) == frank.address:
                smaller = PlaceOrder(
                    market=a.market,
                    is_buy=a.is_buy,
                    price=a.price,
                    size=a.size - 1,
                    tif=a.tif,
                    reduce_only=a.reduce_only,
                    cloid=a.cloid,
                )
                txs[i] = sign_transaction(frank, 1337, smaller, tx.nonce)
        header = entry.block.header
        forged = type(header)(
            height=header.height,
            time_ms=header.time_ms,
            parent_hash=header.parent_hash,
            tx_root=ordered_root(txs),
            state_root=header.state_root,
            events_root=header.events_root,
        )
        return LogBlock(block=type(entry.block)(header=forged, txs=txs), witness=entry.witness)

    bad = tmp_path / "order.log"
    rewrite(path, bad, target, change)
    rc, report = verify_json(bad, capsys)
    assert rc == 1 and report["height"] == target and report["what"] in ("events_root", "state_root")


def test_explain_shows_the_ranking_evidence_for_the_deleveraged_account(demo, capsys) -> None:
    path, h = demo
    assert main(["explain", str(path), "--account", "frank"]) == 0
    text = capsys.readouterr().out
    assert "auto-deleveraged" in text and "rank 1 of" in text and "index" in text and "below it" in text
    assert main(["explain", str(path), "--account", "frank", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report and json.dumps(report).count("index") > 0
