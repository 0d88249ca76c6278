"""Guards for the files the CLI touches: never delete or write into what the tool did not create.

* ``prepare_demo_dir``: ``demo --out DIR`` only ever replaces ``DIR/demo.log`` and
  the LMDB files in ``DIR/state``; a non-empty folder it did not make needs
  ``--force``, and even then foreign files are never removed.
* ``check_db_dir`` / ``NewDatabase``: ``replay`` refuses a folder that holds anything
  but an LMDB state database, and a failed first replay removes the files it created.
* ``open_readonly``: read-only commands open an existing database without creating
  or changing anything.
"""

from __future__ import annotations

import os
from typing import Any

from tx.logfile import MAGIC

DEMO_MARKER = ".clearinghouse-demo"
"""Left in a demo output folder so a later ``demo --out`` may replace its own files there."""

LMDB_FILES = ("data.mdb", "lock.mdb", "events.dat", "compact.tmp")
"""The files of a state database folder: LMDB's two, the events file (``chain.events_file``) and the
folder an interrupted compaction may leave (``LmdbStore.compact``; removed by the next writer)."""


class UnsafePath(Exception):
    """A path the tool refuses to touch; the CLI prints the message and exits 1."""


def _is_log_file(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def prepare_demo_dir(out: str, *, force: bool) -> tuple[str, str]:
    """Make ``out`` ready for the demo; return (log path, db path). Removes only the demo's own files."""
    log_path = os.path.join(out, "demo.log")
    db_path = os.path.join(out, "state")
    marker = os.path.join(out, DEMO_MARKER)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UnsafePath(f"{out} exists and is not a folder")
    entries = sorted(os.listdir(out)) if os.path.isdir(out) else []
    if entries and not os.path.isfile(marker) and not force:
        raise UnsafePath(
            f"{out} is not empty and was not made by `clearinghouse demo`; use a new or empty folder, "
            "or --force to replace only its demo.log and state/ (other files are never touched)"
        )
    if os.path.lexists(log_path) and (
        os.path.isdir(log_path) or os.path.islink(log_path) or not _is_log_file(log_path)
    ):
        raise UnsafePath(f"{log_path} exists and is not a clearinghouse log; the demo will not overwrite it")
    if os.path.lexists(db_path):
        if os.path.islink(db_path) or not os.path.isdir(db_path):
            raise UnsafePath(f"{db_path} exists and is not a state database folder; the demo will not replace it")
        foreign = sorted(set(os.listdir(db_path)) - set(LMDB_FILES))
        if foreign:
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise UnsafePath(f"{db_path} holds files the demo did not create ({shown}); the demo will not replace it")
    os.makedirs(out, exist_ok=True)
    with open(marker, "w") as f:
        f.write("made by `clearinghouse demo`: it may replace demo.log and state/ here\n")
    if os.path.isdir(db_path):
        for name in LMDB_FILES:
            p = os.path.join(db_path, name)
            if os.path.isfile(p):
                os.remove(p)
        os.rmdir(db_path)
    return log_path, db_path


def check_db_dir(path: str) -> bool:
    """Refuse a folder that holds anything but an LMDB database; return whether a database exists there."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UnsafePath(f"{path} exists and is not a folder")
    if not os.path.isdir(path):
        return False
    entries = set(os.listdir(path))
    foreign = sorted(entries - set(LMDB_FILES))
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise UnsafePath(f"{path} holds files that are not a state database ({shown}); give a new or empty folder")
    return "data.mdb" in entries


class NewDatabase:
    """Remember what a first replay creates so a failure can remove exactly that."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.existed = check_db_dir(path)
        self.dir_existed = os.path.isdir(path)

    def discard(self) -> None:
        """After a failed first replay: remove the files it created if nothing was committed.

        Blocks that were verified and committed before the failure (say, a log whose tail
        is torn) are kept, so the next replay resumes from them; an empty database is not.
        """
        if self.existed or self._committed():
            return
        for name in LMDB_FILES:
            p = os.path.join(self.path, name)
            if os.path.isfile(p):
                os.remove(p)
        if not self.dir_existed and os.path.isdir(self.path) and not os.listdir(self.path):
            os.rmdir(self.path)

    def _committed(self) -> bool:
        from state import LmdbStore, StateError

        if not os.path.isfile(os.path.join(self.path, "data.mdb")):
            return False
        try:
            with LmdbStore(self.path, readonly=True) as store:
                return store.height >= 0
        except StateError:
            return False


def open_readonly(path: str) -> Any:
    """Open an existing state database read-only (creates nothing); UnsafePath if there is none."""
    from state import LmdbStore

    if not os.path.isdir(path):
        raise UnsafePath(f"no state database at {path}")
    if not os.path.isfile(os.path.join(path, "data.mdb")):
        raise UnsafePath(f"{path} is not a state database (no data.mdb)")
    store = LmdbStore(path, readonly=True)
    if store.height < 0:
        store.close()
        raise UnsafePath(f"the state database at {path} is empty")
    return store


def open_existing_store(path: str) -> Any:
    """Open a state database read-only: nothing is created or changed, a read-only copy works."""
    from clearinghouse.tools.console import CliError

    try:
        return open_readonly(path)
    except UnsafePath as exc:
        raise CliError(str(exc), error_code="NO_DATABASE") from None
