"""The collector's transactional store of results, and its read API (`DATA/results.sqlite`).

One SQLite file (WAL, `synchronous=FULL`: a committed transaction is on disk) with one row per
result: primary key (runtime uuid, result id) (common/results.py), so a result delivered again is
stored once; a node cannot shadow another node's result with the same id (it publishes only on
its own runtimes' topics). `record` is the collector's JSON record, the same object as its file
(`type`, `topic`, `received`, `key`, `runtime`, `module`, and `data`, or `error` and `raw_base64`);
`file` the record's file relative to DATA when the collector also writes files (its default mode).

Read API (for `manage.py export`/`report`, docs/benchmarking.md "The results store"):

    db = ResultDB.open_readonly("data/results.sqlite")   # or ResultDB.find("data") for a directory
    db.records(campaign="c1", types=["benchmarking-v3"])  # iterator of record dicts, arrival order
    db.count(campaign="c1")                               # results stored
    db.cells("c1")                                        # {cell index: results stored}
    db.stored("RUNTIME_UUID", ["id1", "id2"])             # the ids among these that are stored
    db.close()
"""
from __future__ import annotations

import os
import sqlite3
from typing import Any, Iterator, Sequence

import orjson

DB_NAME = "results.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    runtime TEXT NOT NULL,      -- runtime uuid (from the topic)
    id TEXT NOT NULL,           -- result id
    type TEXT NOT NULL,         -- profile type
    module TEXT NOT NULL,       -- module uuid (from the topic)
    received REAL NOT NULL,     -- time.time() of its arrival at the collector
    campaign TEXT,              -- the module's args.campaign, when it is a campaign's cell
    cell INTEGER,               -- its args.cell
    record BLOB NOT NULL,       -- the collector's record (JSON)
    file TEXT,                  -- its file, relative to the data directory (files mode)
    PRIMARY KEY (runtime, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_campaign ON results (campaign, cell);
CREATE INDEX IF NOT EXISTS results_received ON results (received);
"""

Row = tuple[str, str, str, str, float, "str | None", "int | None", bytes, "str | None"]


class ResultDB:
    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str) -> "ResultDB":
        """For the collector: created when missing; every commit durable."""
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)
        return cls(conn, path)

    @classmethod
    def open_readonly(cls, path: str) -> "ResultDB":
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no results store here (the collector writes DATA/{DB_NAME})")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        return cls(conn, path)

    @classmethod
    def find(cls, directory: str) -> "ResultDB | None":
        """The store of a collector's data directory, read-only; None when it has none (older collector)."""
        path = os.path.join(directory, DB_NAME)
        return cls.open_readonly(path) if os.path.exists(path) else None

    def close(self) -> None:
        self.conn.close()

    # -- the collector's side

    def insert(self, rows: Sequence[Row]) -> int:
        """Store `rows` in one durable transaction; a row whose (runtime, id) is there is left as it
        is. Returns how many were new."""
        if not rows:
            return 0
        c = self.conn
        before = c.total_changes
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany("INSERT OR IGNORE INTO results VALUES (?,?,?,?,?,?,?,?,?)", rows)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return c.total_changes - before

    # -- the read API

    def stored(self, runtime: str, ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = list(ids[i:i + 500])
            q = f"SELECT id FROM results WHERE runtime=? AND id IN ({','.join('?' * len(chunk))})"
            out.update(r[0] for r in self.conn.execute(q, [runtime, *chunk]))
        return out

    def records(self, campaign: str | None = None, types: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """The stored records (dicts, as the collector's files hold them), in arrival order."""
        q, args = "SELECT record FROM results", []
        where = []
        if campaign is not None:
            where.append("campaign=?")
            args.append(campaign)
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            args += list(types)
        if where:
            q += " WHERE " + " AND ".join(where)
        for (rec,) in self.conn.execute(q + " ORDER BY received", args):
            yield orjson.loads(rec)

    def count(self, campaign: str | None = None) -> int:
        if campaign is None:
            return int(self.conn.execute("SELECT count(*) FROM results").fetchone()[0])
        return int(self.conn.execute("SELECT count(*) FROM results WHERE campaign=?", (campaign,)).fetchone()[0])

    def cells(self, campaign: str) -> dict[int, int]:
        return {int(c): int(n) for c, n in self.conn.execute(
            "SELECT cell, count(*) FROM results WHERE campaign=? AND cell IS NOT NULL GROUP BY cell", (campaign,))}


def campaign_of(module: dict[str, Any]) -> tuple[str | None, int | None]:
    """(campaign, cell) from a module's create args, (None, None) when it is not a campaign's cell."""
    args = module.get("args")
    if not isinstance(args, dict):
        return None, None
    cid, cell = args.get("campaign"), args.get("cell")
    return (cid if isinstance(cid, str) else None), (cell if isinstance(cell, int) and not isinstance(cell, bool) else None)
