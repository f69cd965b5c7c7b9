"""The orchestrator's SQLite store (WAL): every manager, runtime and module, dead ones too.

One connection, used by the decision thread (REST reads open read-only ones: `reader()`).
WAL with `synchronous=FULL` (issue #25): a commit returns once the log is on disk (fsync), and the service
sends what a decision announces over MQTT only after its commit, so nothing a node or tool was told is lost
by a power cut (NORMAL would lose the last transactions, never corrupt the file; cost in docs/reliability.md,
bench/orchestrator.py `durability`); a batch of messages is one transaction (`Orchestrator.handle_batch`), each message in
a savepoint of it (a refused one goes back alone); a `create_batch` is one message.
With `autocheckpoint=False` the WAL is not copied back into the database inside some
unlucky decision's commit (measured: that is what pushed p99 from 0.3 ms to 4 ms at
100k queued); the owner calls `checkpoint()` from another thread instead, on a second
connection (a PASSIVE checkpoint runs alongside the writer).
Indexes serve every per-decision statement; nothing scans the table on the hot path
(`EXPLAIN QUERY PLAN` is checked in tests/orchestrator/test_store.py).
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Any, Iterable, Iterator, Sequence

import orjson

from orchestrator.model import NOT_DEAD, Node

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes(
    uuid TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    parent TEXT,
    status TEXT NOT NULL,
    runtime_type TEXT NOT NULL DEFAULT '',
    max_nmodules INTEGER NOT NULL DEFAULT 0,
    apis TEXT NOT NULL DEFAULT '[]',
    info BLOB NOT NULL DEFAULT '{}',
    ka_interval REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS nodes_name ON nodes(name, status);
CREATE TABLE IF NOT EXISTS modules(
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    parent TEXT,
    file TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    data BLOB NOT NULL,
    exit BLOB,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS modules_status ON modules(status, seq);
CREATE INDEX IF NOT EXISTS modules_parent ON modules(parent, status, seq);
CREATE INDEX IF NOT EXISTS modules_name ON modules(name, status);
"""

_MODULE_COLS = "seq, uuid, name, parent, file, status, data, exit, created, updated"


def _marks(n: int) -> str:
    return ",".join("?" * n)


class Reader:
    """The REST API's module queries over one connection (the store's, or a read-only one)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

    @staticmethod
    def _module_dict(row: Sequence[Any]) -> dict[str, Any]:
        data = orjson.loads(row[6])
        return {
            "type": "module", "uuid": row[1], "name": row[2], "parent": row[3], "file": row[4], "status": row[5],
            "apis": data.get("apis", []), "args": data.get("args", {}), "channels": data.get("channels", []),
            "exit": orjson.loads(row[7]) if row[7] else None, "index": row[0],
        }

    def module_by_uuid(self, uuid: str) -> dict[str, Any] | None:
        row = self.conn.execute(f"SELECT {_MODULE_COLS} FROM modules WHERE uuid=?", (uuid,)).fetchone()
        return self._module_dict(row) if row else None

    def module_name_of(self, uuid: str) -> str | None:
        """The name of the module with this uuid, in any state (None: the uuid was never used)."""
        row = self.conn.execute("SELECT name FROM modules WHERE uuid=?", (uuid,)).fetchone()
        return None if row is None else str(row[0])

    def module_by_name(self, name: str, statuses: Sequence[str]) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT {_MODULE_COLS} FROM modules WHERE name=? AND status IN ({_marks(len(statuses))}) ORDER BY seq DESC LIMIT 1",
            (name, *statuses),
        ).fetchone()
        return self._module_dict(row) if row else None

    def module_by_suffix(self, suffix: str, statuses: Sequence[str]) -> dict[str, Any] | None:
        """The oldest module in `statuses` whose uuid ends with `suffix` (a scan of those rows: REST only)."""
        if not suffix:
            return None
        row = self.conn.execute(
            f"SELECT {_MODULE_COLS} FROM modules WHERE status IN ({_marks(len(statuses))}) AND substr(uuid, -?) = ?"
            " ORDER BY seq LIMIT 1", (*statuses, len(suffix), suffix)).fetchone()
        return self._module_dict(row) if row else None

    def queued_short(self, parent: str, count: int) -> list[dict[str, Any]]:
        """The first `count` modules queued on runtime `parent`, FIFO, in the short form of a runtime entry."""
        rows = self.conn.execute(
            "SELECT uuid, name, parent, file, status FROM modules WHERE parent=? AND status='Q' ORDER BY seq LIMIT ?",
            (parent, count)).fetchall()
        return [{"uuid": r[0], "name": r[1], "parent": r[2], "file": r[3], "status": r[4]} for r in rows]

    @staticmethod
    def _module_filter(statuses: Sequence[str], parent: str | None, name: str | None) -> tuple[str, list[Any]]:
        where = f"status IN ({_marks(len(statuses))})"
        params: list[Any] = list(statuses)
        if parent is not None:
            where += " AND parent=?"
            params.append(parent)
        if name is not None:
            where += " AND name=?"
            params.append(name)
        return where, params

    def modules(self, statuses: Sequence[str], start: int, count: int, parent: str | None = None,
                name: str | None = None) -> list[dict[str, Any]]:
        where, params = self._module_filter(statuses, parent, name)
        rows = self.conn.execute(
            f"SELECT {_MODULE_COLS} FROM modules WHERE {where} ORDER BY seq LIMIT ? OFFSET ?", (*params, count, start)
        ).fetchall()
        return [self._module_dict(r) for r in rows]

    def count_modules(self, statuses: Sequence[str], parent: str | None = None, name: str | None = None) -> int:
        where, params = self._module_filter(statuses, parent, name)
        return int(self.conn.execute(f"SELECT count(*) FROM modules WHERE {where}", params).fetchone()[0])


class _LazyReader(Reader):
    def __init__(self, path: str) -> None:
        self._path = path
        self._lazy: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._lazy is None:
            self._lazy = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, check_same_thread=False)
        return self._lazy

    def close(self) -> None:
        if self._lazy is not None:
            self._lazy.close()
            self._lazy = None


class Store(Reader):
    """SQLite persistence of the orchestrator's state; `close()` is idempotent."""

    def __init__(self, path: str, *, autocheckpoint: bool = True, synchronous: str = "FULL") -> None:
        if path != ":memory:" and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (one transaction per decision).
        self.db: sqlite3.Connection | None = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        # a 64 MiB page cache (default 2 MiB): inserting 100k modules (a campaign) updates four indexes keyed by
        # random uuids and names; with the default cache most of those inserts missed it (measured in process:
        # a 100k-cell campaign 7.5 s -> 3.9 s)
        self.db.execute("PRAGMA cache_size=-65536")
        self.db.executescript(SCHEMA)
        if not autocheckpoint:
            self.db.execute("PRAGMA wal_autocheckpoint=0")
        self._depth = 0
        self._ckpt: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self.db is None:
            raise RuntimeError(f"store {self.path} is closed")
        return self.db

    def close(self) -> None:
        if self._ckpt is not None:
            self._ckpt.close()
            self._ckpt = None
        if self.db is not None:
            self.db.close()
            self.db = None

    def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL back into the database (PASSIVE: never waits for the writer).

        Call from one thread only (not the one deciding); returns (WAL pages, pages copied).
        """
        if self.db is None:
            return (0, 0)
        if self._ckpt is None:
            self._ckpt = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        row = self._ckpt.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return (int(row[1]), int(row[2]))

    @contextlib.contextmanager
    def reader(self) -> Iterator[Reader]:
        """A read-only connection of its own (WAL: reads never wait for the writer, nor it for them),
        opened on first use (a runtime list from the REST snapshot needs none)."""
        r = _LazyReader(self.path)
        try:
            yield r
        finally:
            r.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN..COMMIT (ROLLBACK on error); nested uses join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """One message's part of a batch transaction: its changes go back alone when it raises."""
        self.conn.execute("SAVEPOINT msg")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO msg")
            self.conn.execute("RELEASE msg")
            raise
        self.conn.execute("RELEASE msg")

    # -- nodes (managers and runtimes) --------------------------------------------------
    def put_node(self, n: Node, now: float) -> None:
        self.conn.execute(
            "INSERT INTO nodes(uuid, kind, name, parent, status, runtime_type, max_nmodules, apis, info, ka_interval, created, updated)"
            " VALUES(?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(uuid) DO UPDATE SET kind=excluded.kind, name=excluded.name,"
            " parent=excluded.parent, status=excluded.status, runtime_type=excluded.runtime_type,"
            " max_nmodules=excluded.max_nmodules, apis=excluded.apis, info=excluded.info,"
            " ka_interval=excluded.ka_interval, updated=excluded.updated",
            (n.uuid, n.kind, n.name, n.parent, n.status, n.runtime_type, n.max_nmodules,
             orjson.dumps(sorted(n.apis)).decode(), orjson.dumps(n.info), n.ka_interval, now, now),
        )

    def set_node_status(self, uuid: str, status: str, now: float) -> None:
        self.conn.execute("UPDATE nodes SET status=?, updated=? WHERE uuid=?", (status, now, uuid))

    def load_nodes(self) -> list[Node]:
        out = []
        for row in self.conn.execute(
            "SELECT uuid, kind, name, parent, status, runtime_type, max_nmodules, apis, info, ka_interval FROM nodes ORDER BY created"
        ):
            out.append(Node(uuid=row[0], kind=row[1], name=row[2], parent=row[3], status=row[4], runtime_type=row[5],
                            max_nmodules=row[6], apis=frozenset(orjson.loads(row[7])), info=orjson.loads(row[8]),
                            ka_interval=row[9]))
        return out

    def node_row(self, uuid: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT uuid, kind, name, parent, status, updated FROM nodes WHERE uuid=?", (uuid,)).fetchone()
        if row is None:
            return None
        return {"uuid": row[0], "type": row[1], "name": row[2], "parent": row[3], "status": row[4], "updated": row[5]}

    # -- modules ------------------------------------------------------------------------
    def insert_modules(self, rows: Iterable[tuple[int, str, str, str | None, str, str, bytes, float, float]]) -> None:
        """Rows of (seq, uuid, name, parent, file, status, data, created, updated); a uuid is never reused
        (placement.py refuses a create of a known one), so a row of the same uuid is an error here."""
        self.conn.executemany(
            "INSERT INTO modules(seq, uuid, name, parent, file, status, data, created, updated) VALUES(?,?,?,?,?,?,?,?,?)",
            rows,
        )

    def set_module(self, uuid: str, status: str, parent: str | None, now: float) -> None:
        self.conn.execute("UPDATE modules SET status=?, parent=?, updated=? WHERE uuid=?", (status, parent, now, uuid))

    def set_modules_status(self, uuids: Sequence[str], status: str, now: float) -> None:
        self.conn.executemany("UPDATE modules SET status=?, updated=? WHERE uuid=?", ((status, now, u) for u in uuids))

    def set_exit(self, uuid: str, status: str, exit_status: Any, now: float) -> None:
        self.conn.execute("UPDATE modules SET status=?, exit=?, updated=? WHERE uuid=?",
                          (status, orjson.dumps(exit_status), now, uuid))

    def module_data(self, uuid: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT data FROM modules WHERE uuid=?", (uuid,)).fetchone()
        if row is None:
            raise KeyError(uuid)
        d: dict[str, Any] = orjson.loads(row[0])
        return d

    def max_seq(self) -> int:
        row = self.conn.execute("SELECT max(seq) FROM modules").fetchone()
        return int(row[0] or 0)

    def load_live_modules(self) -> Iterator[tuple[int, str, str, str | None, str, str]]:
        """(seq, uuid, name, parent, status, file) of every module not dead, in creation (FIFO) order."""
        yield from self.conn.execute(
            f"SELECT seq, uuid, name, parent, status, file FROM modules WHERE status IN ({_marks(len(NOT_DEAD))}) ORDER BY seq",
            NOT_DEAD,
        )
