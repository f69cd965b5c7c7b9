"""The campaign tables in the orchestrator's store, and their statements.

Schema changes are numbered migrations (`MIGRATIONS`), applied in order in one transaction and
recorded in the database's `PRAGMA user_version` (the campaign schema's version; the
orchestrator's own tables, orchestrator/store.py, are created as they are). To change the
campaign schema, append a migration: never edit one that has shipped. A store made before the
schema was versioned (user_version 0 with the tables present) is adopted at the version its
columns show.
"""
from __future__ import annotations

import sqlite3
from typing import Any, Iterable

import orjson

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: campaigns and their cells (a cell's current module, outcome and record)
        """CREATE TABLE IF NOT EXISTS campaigns(
            id TEXT PRIMARY KEY,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            spec BLOB NOT NULL,
            ncells INTEGER NOT NULL,
            resumes INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE IF NOT EXISTS cells(
            campaign TEXT NOT NULL,
            idx INTEGER NOT NULL,
            runtime TEXT NOT NULL,
            file TEXT NOT NULL,
            engine TEXT NOT NULL,
            argv BLOB NOT NULL,
            module TEXT,
            attempts INTEGER NOT NULL DEFAULT 1,
            outcome TEXT,
            record BLOB,
            updated REAL NOT NULL,
            PRIMARY KEY(campaign, idx))""",
        "CREATE INDEX IF NOT EXISTS cells_module ON cells(module)",
    ),
    (  # 2: the parts of a cell's profile seen so far, and their run outcomes (hooks.py on_profile, settle)
        "ALTER TABLE cells ADD COLUMN profile BLOB",
    ),
    (  # 3: whether a collector stored the cell's data (data.py); cells done before it count as stored
        "ALTER TABLE cells ADD COLUMN data INTEGER",
        "UPDATE cells SET data=1 WHERE outcome='done'",
        """CREATE TABLE IF NOT EXISTS results(
            runtime TEXT NOT NULL,
            id TEXT NOT NULL,
            campaign TEXT,
            idx INTEGER,
            module TEXT,
            part INTEGER,
            nparts INTEGER,
            stored INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY(runtime, id))""",
        "CREATE INDEX IF NOT EXISTS results_cell ON results(campaign, idx)",
    ),
)
VERSION = len(MIGRATIONS)


class SchemaError(Exception):
    """A store this orchestrator cannot use (made by a newer one)."""


def _unversioned(conn: sqlite3.Connection) -> int:
    """The version of a store made before the campaign schema was versioned (user_version 0)."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(cells)")}
    if not cols:
        return 0
    return 2 if "profile" in cols else 1


def migrate(conn: sqlite3.Connection, where: str = "the orchestrator's store") -> int:
    """Bring the campaign tables to `VERSION` (one transaction); returns the version found."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > VERSION:
        raise SchemaError(f"{where}: campaign schema version {found} is newer than this orchestrator's {VERSION}:"
                          " run the orchestrator version that wrote it, or a newer one")
    if found == VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        at = found or _unversioned(conn)
        for steps in MIGRATIONS[at:]:
            for sql in steps:
                conn.execute(sql)
        conn.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return found


class CampaignStore:
    """The statements of the campaign requests and hooks, over the orchestrator's connection
    (inside its decision's transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        migrate(conn)
        self.db = conn

    # -- campaigns ----------------------------------------------------------------------------
    def spec(self, cid: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT spec FROM campaigns WHERE id=?", (cid,)).fetchone()
        return orjson.loads(row[0]) if row is not None else None

    def exists(self, cid: str) -> bool:
        return self.db.execute("SELECT 1 FROM campaigns WHERE id=?", (cid,)).fetchone() is not None

    def add(self, cid: str, spec: dict[str, Any], cells: Iterable[tuple[str, int, str, str, str, bytes, str, float]],
            ncells: int, now: float) -> None:
        """A new campaign and its cells: (campaign, idx, runtime, file, engine, argv, module, updated)."""
        self.db.execute("INSERT INTO campaigns(id, created, updated, spec, ncells) VALUES(?,?,?,?,?)",
                        (cid, now, now, orjson.dumps(spec), ncells))
        self.db.executemany("INSERT INTO cells(campaign, idx, runtime, file, engine, argv, module, updated)"
                            " VALUES(?,?,?,?,?,?,?,?)", cells)

    def not_done(self, cid: str) -> list[tuple[int, str, str, str, bytes, str | None, str | None]]:
        """(idx, runtime, file, engine, argv, module, module status) of the cells not done, oldest module first."""
        return [tuple(r) for r in self.db.execute(
            "SELECT c.idx, c.runtime, c.file, c.engine, c.argv, c.module, m.status FROM cells c"
            " LEFT JOIN modules m ON m.uuid = c.module WHERE c.campaign=? AND (c.outcome IS NULL OR c.outcome != 'done')"
            " ORDER BY m.seq", (cid,))]

    def restart(self, cid: str, cells: Iterable[tuple[str, float, str, int]], now: float) -> None:
        """Cells of a resume get a new module: (module, updated, campaign, idx)."""
        self.db.executemany("UPDATE cells SET module=?, attempts=attempts+1, outcome=NULL, record=NULL, profile=NULL, data=NULL,"
                            " updated=? WHERE campaign=? AND idx=?", cells)
        self.db.execute("UPDATE campaigns SET resumes=resumes+1, updated=? WHERE id=?", (now, cid))

    # -- cells by their current module --------------------------------------------------------
    def campaign_of(self, module: str) -> str | None:
        row = self.db.execute("SELECT campaign FROM cells WHERE module=?", (module,)).fetchone()
        return str(row[0]) if row is not None else None

    def cell_of(self, module: str) -> tuple[str, int] | None:
        """(campaign, idx) of the cell whose current module this is."""
        row = self.db.execute("SELECT campaign, idx FROM cells WHERE module=?", (module,)).fetchone()
        return (str(row[0]), int(row[1])) if row is not None else None

    def set_outcome(self, module: str, outcome: str, record: dict[str, Any], now: float) -> None:
        """The outcome of the cell whose module this is; a recorded outcome stands (a resume clears it)."""
        self.db.execute("UPDATE cells SET outcome=?, record=?, updated=? WHERE module=? AND outcome IS NULL",
                        (outcome, orjson.dumps(record), now, module))

    def open_cell(self, module: str) -> tuple[str, int, dict[str, Any] | None] | None:
        """(campaign, idx, profile so far) of the cell whose module this is, if it has no outcome yet."""
        row = self.db.execute("SELECT campaign, idx, profile FROM cells WHERE module=? AND outcome IS NULL",
                              (module,)).fetchone()
        if row is None:
            return None
        return str(row[0]), int(row[1]), orjson.loads(row[2]) if row[2] else None

    def set_profile(self, cid: str, idx: int, profile: dict[str, Any]) -> None:
        self.db.execute("UPDATE cells SET profile=? WHERE campaign=? AND idx=?", (orjson.dumps(profile), cid, idx))

    def open_profile(self, module: str) -> dict[str, Any] | None:
        """The profile so far of the cell whose module this is, if it has no outcome yet."""
        row = self.db.execute("SELECT profile FROM cells WHERE module=? AND outcome IS NULL AND profile IS NOT NULL",
                              (module,)).fetchone()
        return orjson.loads(row[0]) if row is not None else None
