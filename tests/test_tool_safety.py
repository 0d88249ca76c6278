"""Issue 11, safety: the commands never delete or write what they did not create.

* ``demo --out DIR`` refuses a non-empty folder it did not make (``--force``
  still never removes a foreign file);
* one writer at a time: a second writer gets "database in use" (exit 1) and
  the database stays correct;
* ``verify`` needs a genesis and checks ``--expect-height`` / ``--expect-root``;
* read-only commands open the database read-only and create or change nothing;
* ``replay`` refuses a folder of unrelated files and a failed first replay
  leaves nothing behind;
* a full disk and damaged pages are one-line errors with exit 1;
* ``audit --deep`` finds a value that rotted on disk and names its key.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import subprocess_env

from clearinghouse.spec.state.keys import NS_POSITION, record_type
from clearinghouse.tools.cli import main
from tx.logfile import FRAME_BLOCK, encode_frame, encode_header, iter_frames_from_bytes


def run_cli(args: list[Any]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def one_line_failure(rc: int, err: str) -> None:
    assert rc == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.startswith("error: ") and err.count("\n") == 1, err


def tree_state(root: Path) -> dict[str, tuple[int, float, str]]:
    """Every file under ``root``: (size, mtime, sha1), to show nothing was created or changed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.stat()
            digest = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, digest)
    return out


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("safety") / "demo"
    rc, _out, err = run_cli(["demo", "--out", out, "--json"])
    assert rc == 0, err
    return out


# ---------------------------------------------------------------- demo
def test_demo_refuses_a_foreign_folder_and_keeps_its_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    before = tree_state(tmp_path)
    rc, _out, err = run_cli(["demo", "--out", tmp_path])
    one_line_failure(rc, err)
    assert "--force" in err
    assert tree_state(tmp_path) == before


def test_demo_out_dot_in_a_project_never_deletes_its_state_package(tmp_path: Path) -> None:
    """The finding: ``demo --out .`` from the repository root removed the ``state/`` package."""
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "__init__.py").write_text("# the project's package\n")
    (tmp_path / "README.md").write_text("readme")
    before = tree_state(tmp_path)
    for extra in ([], ["--force"]):
        rc, _out, err = run_cli(["demo", "--out", tmp_path, *extra])
        one_line_failure(rc, err)
        assert tree_state(tmp_path) == before


def test_demo_force_replaces_only_its_own_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("keep")
    rc, _out, err = run_cli(["demo", "--out", tmp_path, "--force", "--json"])
    assert rc == 0, err
    assert (tmp_path / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".clearinghouse-demo", "demo.log", "keep.txt", "state"]
    # Its own folder: a second run replaces demo.log and the database, nothing else.
    rc, _out, err = run_cli(["demo", "--out", tmp_path, "--json"])
    assert rc == 0, err
    assert (tmp_path / "keep.txt").read_text() == "keep"


def test_demo_will_not_overwrite_a_demo_log_that_is_not_a_log(tmp_path: Path) -> None:
    (tmp_path / "demo.log").write_text("my own log file")
    rc, _out, err = run_cli(["demo", "--out", tmp_path, "--force"])
    one_line_failure(rc, err)
    assert (tmp_path / "demo.log").read_text() == "my own log file"


# ---------------------------------------------------------------- one writer
def test_a_second_writer_gets_database_in_use(demo_dir: Path, tmp_path: Path) -> None:
    from state import LmdbStore

    db = tmp_path / "db"
    rc, _out, err = run_cli(["replay", demo_dir / "demo.log", "--db", db, "--json"])
    assert rc == 0, err
    holder = LmdbStore(db)  # this process holds the writer lock
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "clearinghouse.tools.cli", "replay", str(demo_dir / "demo.log"), "--db", str(db)],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=120,
        )
        one_line_failure(proc.returncode, proc.stderr)
        assert "database in use by another process" in proc.stderr
    finally:
        holder.close()
    assert sorted(p.name for p in db.iterdir()) == ["data.mdb", "events.dat", "lock.mdb"]  # the loser removed nothing


def test_concurrent_replays_leave_one_correct_database(tmp_path: Path) -> None:
    """Two replays of a long log into one database started together: each either succeeds or says "in use"."""
    from clearinghouse.chain.producer import Producer
    from clearinghouse.tools.demo import USDC, demo_genesis
    from tx.actions import Deposit, Transfer

    log = tmp_path / "long.log"
    p = Producer(demo_genesis(), str(log), overwrite=True)
    bridge, names = p.wallet("bridge"), [f"user-{i}" for i in range(40)]
    wallets = [p.wallet(n) for n in names]
    p.block(
        [
            bridge.sign(Deposit(to=w.address, amount=1_000 * USDC, ref=i + 1), p.time_ms + 1000)
            for i, w in enumerate(wallets)
        ]
    )
    for b in range(60):
        p.block(
            [
                w.sign(Transfer(to=wallets[(i + b + 1) % len(wallets)].address, amount=1 + b), p.time_ms + 1000)
                for i, w in enumerate(wallets)
            ]
        )
    p.close()
    db = tmp_path / "db"
    cmd = [sys.executable, "-m", "clearinghouse.tools.cli", "replay", str(log), "--db", str(db), "--json"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
        for _ in range(2)
    ]
    results = [(pr.wait(timeout=300), pr.stdout.read(), pr.stderr.read()) for pr in procs]
    for pr in procs:
        pr.stdout.close()
        pr.stderr.close()
    assert any(rc == 0 for rc, _o, _e in results), results
    for rc, out, err in results:
        if rc != 0:
            assert rc == 1 and "database in use" in err, err
            assert json.loads(out)["error"]["code"] == "STORE_IN_USE"
        assert "VERIFY_MISMATCH" not in err and "internal error" not in err, err
    rc, out, err = run_cli(["verify", log, "--json"])
    assert rc == 0, err
    expected_root = json.loads(out)["state_root"]
    rc, out, err = run_cli(["audit", "--db", db, "--deep", "--json"])
    assert rc == 0, err
    report = json.loads(out)
    assert report["state_root"] == expected_root and report["height"] == 61


# ---------------------------------------------------------------- verify
def test_header_only_log_fails_verify(demo_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "header-only.log"
    log.write_bytes(encode_header())
    rc, _out, err = run_cli(["verify", log])
    one_line_failure(rc, err)
    assert "no genesis" in err
    rc, out, _err = run_cli(["verify", log, "--json"])
    assert rc == 1 and json.loads(out)["error"]["code"] == "NO_GENESIS"


def test_log_cut_at_a_frame_boundary_fails_expect_height(demo_dir: Path, tmp_path: Path) -> None:
    data = (demo_dir / "demo.log").read_bytes()
    frames = list(iter_frames_from_bytes(data))
    cut = tmp_path / "cut.log"
    cut.write_bytes(encode_header() + b"".join(encode_frame(f.kind, f.payload) for f in frames[:-3]))
    full_height = sum(1 for f in frames if f.kind == FRAME_BLOCK)
    rc, out, err = run_cli(["verify", demo_dir / "demo.log", "--json", "--expect-height", full_height])
    assert rc == 0, err
    root = json.loads(out)["state_root"]
    rc, _out, err = run_cli(["verify", cut])  # on its own, a shorter chain verifies
    assert rc == 0, err
    rc, _out, err = run_cli(["verify", cut, "--expect-height", full_height])
    one_line_failure(rc, err)
    assert f"expected {full_height}" in err
    rc, out, err = run_cli(["verify", cut, "--expect-root", root, "--json"])
    assert rc == 1 and json.loads(out)["ok"] is False
    rc, _out, err = run_cli(
        ["verify", demo_dir / "demo.log", "--expect-root", "0x" + root, "--expect-height", full_height]
    )
    assert rc == 0, err


def test_verify_of_a_folder_says_so(tmp_path: Path) -> None:
    rc, _out, err = run_cli(["verify", tmp_path])
    one_line_failure(rc, err)
    assert "is a folder, not a log file" in err


# ---------------------------------------------------------------- read-only
def _read_only_commands(db: Path, other: Path) -> list[list[Any]]:
    carol = "0xD7D34767581960aCA19a4A80aacaE080dbA839DA"
    return [
        ["inspect", "--db", db, carol, "--proof", "--json"],
        ["audit", "--db", db, "--deep", "--json"],
        ["diff", db, other, "--json"],
        ["explain", db, "--account", "carol", "--json"],
        ["export", "fills", db],
        ["export", "state", db, "--user", "carol"],
    ]


def test_read_only_commands_create_and_change_nothing(demo_dir: Path, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    shutil.copytree(demo_dir / "state", ro)
    other = tmp_path / "other"
    shutil.copytree(demo_dir / "state", other)
    for p in (ro, other):
        for f in p.iterdir():
            f.chmod(0o444)
        p.chmod(0o555)
    try:
        before = tree_state(ro), tree_state(other)
        for args in _read_only_commands(ro, other):
            rc, out, err = run_cli(args)
            assert rc == 0, (args, err)
            json.loads(out.splitlines()[0] if args[0] == "export" else out)
        assert (tree_state(ro), tree_state(other)) == before
    finally:
        for p in (ro, other):
            p.chmod(0o755)


def test_read_only_commands_work_on_a_read_only_mount(demo_dir: Path, tmp_path: Path) -> None:
    """A real read-only filesystem (root bypasses chmod): a read-only bind mount where the system allows it."""
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    shutil.copytree(demo_dir / "state", src)
    mnt.mkdir()
    if subprocess.run(["mount", "--bind", str(src), str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("bind mounts are not permitted here")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)], capture_output=True).returncode != 0:
            pytest.skip("read-only remounts are not permitted here")
        with pytest.raises(OSError):
            (mnt / "probe").write_text("x")
        for args in _read_only_commands(mnt, demo_dir / "state"):
            rc, out, err = run_cli(args)
            assert rc == 0, (args, err)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_inspect_on_an_empty_folder_creates_nothing(tmp_path: Path) -> None:
    for args in (
        ["inspect", "--db", tmp_path, "0x" + "00" * 19 + "01"],
        ["audit", "--db", tmp_path],
        ["diff", tmp_path, tmp_path],
        ["explain", tmp_path, "--account", "carol"],
    ):
        rc, _out, err = run_cli(args)
        one_line_failure(rc, err)
        assert list(tmp_path.iterdir()) == [], args


# ---------------------------------------------------------------- replay targets
def test_replay_refuses_a_folder_of_unrelated_files(demo_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")
    before = tree_state(tmp_path)
    rc, _out, err = run_cli(["replay", demo_dir / "demo.log", "--db", tmp_path])
    one_line_failure(rc, err)
    assert tree_state(tmp_path) == before


def test_failed_first_replay_leaves_nothing_behind(tmp_path: Path) -> None:
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"not a log at all, just text")
    for db in (tmp_path / "new-db", tmp_path / "empty-db"):
        if db.name == "empty-db":
            db.mkdir()
        rc, _out, err = run_cli(["replay", bad, "--db", db])
        one_line_failure(rc, err)
        if db.name == "new-db":
            assert not db.exists()
        else:
            assert list(db.iterdir()) == []


def test_failed_resumed_replay_keeps_the_existing_database(demo_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "db"
    shutil.copytree(demo_dir / "state", db)
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"garbage")
    rc, _out, err = run_cli(["replay", bad, "--db", db])
    one_line_failure(rc, err)
    assert sorted(p.name for p in db.iterdir()) == ["data.mdb", "events.dat", "lock.mdb"]
    rc, _out, err = run_cli(["audit", "--db", db])
    assert rc == 0, err


# ---------------------------------------------------------------- full disk, damage
def test_full_database_is_a_one_line_error(demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from state import lmdb_store

    monkeypatch.setitem(lmdb_store.LMDB_OPTIONS, "map_size", 64 * 1024)
    # One durable commit per block (a group of blocks rewrites fewer pages and may just fit in the map).
    db = tmp_path / "db"
    rc, out, err = run_cli(["replay", demo_dir / "demo.log", "--db", db, "--json", "--commit-every", "1"])
    one_line_failure(rc, err)
    assert "STORE_FULL" in err
    assert json.loads(out)["error"]["code"] == "STORE_FULL"
    # The blocks committed durably before the map filled are whole and verified; they stay, and audit
    # clean (with group commits, a group the map could not hold would be lost: the log replays it).
    rc, out, err = run_cli(["audit", "--db", db, "--deep", "--json"])
    assert rc == 0, err
    assert 0 <= json.loads(out)["height"] < 12


def test_full_disk_is_a_one_line_error(demo_dir: Path, tmp_path: Path) -> None:
    """A real full filesystem: a 64 KiB tmpfs, where mounting is permitted (the demo's log and state need more)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "clearinghouse.tools.cli", "demo", "--out", str(mnt / "demo")],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            timeout=300,
        )
        one_line_failure(proc.returncode, proc.stderr)
        assert "STORE_FULL" in proc.stderr or "DISK_FULL" in proc.stderr, proc.stderr
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.mark.parametrize("where", ["every page", "the chain record's pages"])
@pytest.mark.parametrize("command", ["audit --deep", "inspect", "explain"])
def test_damaged_pages_are_a_one_line_error(demo_dir: Path, tmp_path: Path, where: str, command: str) -> None:
    db = tmp_path / "db"
    shutil.copytree(demo_dir / "state", db)
    data = bytearray((db / "data.mdb").read_bytes())
    page = 4096
    if where == "every page":
        pages = range(2, len(data) // page)  # all but the two meta pages
    else:
        pages = sorted({m.start() // page for m in re.finditer(re.escape(b"Gchain"), bytes(data))})
        assert pages
    for n in pages:
        for i in range(n * page, (n + 1) * page):
            data[i] = (data[i] * 7 + 13) & 0xFF
    (db / "data.mdb").write_bytes(bytes(data))
    args = {
        "audit --deep": ["audit", "--db", str(db), "--deep"],
        "inspect": ["inspect", "--db", str(db), "carol"],
        "explain": ["explain", str(db), "--account", "carol"],
    }[command]
    proc = subprocess.run(
        [sys.executable, "-m", "clearinghouse.tools.cli", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    one_line_failure(proc.returncode, proc.stderr)  # never a crash, a traceback or an internal error (exit 3)
    assert "CORRUPT_STORE" in proc.stderr or "STORE_INCOMPATIBLE" in proc.stderr, proc.stderr


def test_audit_deep_finds_a_rotted_value(demo_dir: Path, tmp_path: Path) -> None:
    """A position's leverage byte changed in data.mdb: open, plain audit and inspect pass; audit --deep names the key."""
    from state import LmdbStore

    db = tmp_path / "db"
    shutil.copytree(demo_dir / "state", db)
    with LmdbStore(db, readonly=True) as store:
        key, raw = next(
            (k, v)
            for k, v in store.scan_prefix(NS_POSITION)
            if msgspec.msgpack.decode(v, type=record_type(k)).size != 0
        )
    pos = msgspec.msgpack.decode(raw, type=record_type(key))
    rotted = msgspec.msgpack.encode(msgspec.structs.replace(pos, leverage=pos.leverage + 1))
    assert len(rotted) == len(raw)
    data = (db / "data.mdb").read_bytes()
    # An LMDB leaf node holds the key, then the value; free pages may keep old copies: change them all.
    assert data.count(key + raw) >= 1
    (db / "data.mdb").write_bytes(data.replace(key + raw, key + rotted))
    rc, _out, err = run_cli(["audit", "--db", db])
    assert rc == 0, err  # the invariants cannot see it
    rc, out, err = run_cli(["audit", "--db", db, "--deep", "--json"])
    assert rc == 1, err
    report = json.loads(out)
    assert report["ok"] is False
    deep = report["deep"]
    assert deep["recomputed_root"] != deep["stored_root"]
    assert deep["first_bad_key"]["key_hex"] == key.hex()
    assert "value changed on disk" in deep["first_bad_key"]["problem"]
    rc, out, _err = run_cli(["audit", "--db", db, "--deep"])
    assert rc == 1 and "position/" in out


def test_errors_are_json_under_json(tmp_path: Path) -> None:
    for args in (
        ["verify", tmp_path / "missing.log", "--json"],
        ["inspect", "--db", tmp_path, "0x" + "00" * 20, "--json"],
        ["audit", "--db", tmp_path, "--json"],
        ["explain", tmp_path / "nope", "--account", "carol", "--json"],
    ):
        rc, out, err = run_cli(args)
        assert rc == 1, (args, err)
        obj = json.loads(out)
        assert (
            obj["ok"] is False and obj["error"]["code"] and obj["error"]["message"] and obj["error"]["exit_code"] == 1
        )
