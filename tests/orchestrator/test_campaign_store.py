"""The campaign schema's versioned migrations (orchestrator/campaigns/store.py, `PRAGMA user_version`):
a new store, a store of before the versioning (with and without the profile column) and one of a
newer orchestrator, each opened by a real Orchestrator over a real SQLite file."""
from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from common.wire import envelope
from orchestrator.campaigns.store import VERSION, SchemaError
from orchestrator.core import Orchestrator
from orchestrator.store import Store
from tests.orchestrator.test_core import R, Harness
from tests.orchestrator.test_campaigns import plan, status

V1 = """
CREATE TABLE campaigns(id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL, spec BLOB NOT NULL,
    ncells INTEGER NOT NULL, resumes INTEGER NOT NULL DEFAULT 0);
CREATE TABLE cells(campaign TEXT NOT NULL, idx INTEGER NOT NULL, runtime TEXT NOT NULL, file TEXT NOT NULL,
    engine TEXT NOT NULL, argv BLOB NOT NULL, module TEXT, attempts INTEGER NOT NULL DEFAULT 1, outcome TEXT,
    record BLOB, updated REAL NOT NULL, PRIMARY KEY(campaign, idx));
CREATE INDEX cells_module ON cells(module);
"""


def schema(path: str) -> tuple[int, set[str]]:
    db = sqlite3.connect(path)
    try:
        return (int(db.execute("PRAGMA user_version").fetchone()[0]),
                {r[1] for r in db.execute("PRAGMA table_info(cells)")})
    finally:
        db.close()


def old_store(path: str, script: str, version: int = 0) -> None:
    db = sqlite3.connect(path)
    db.executescript(script)
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()


def test_a_new_store_gets_the_current_version(tmp_path: Any) -> None:
    h = Harness(str(tmp_path / "o.db"))
    h.store.close()
    assert schema(h.path) == (VERSION, schema(h.path)[1]) and "profile" in schema(h.path)[1]


def test_a_store_of_before_the_profile_column_is_migrated_and_keeps_its_campaigns(tmp_path: Any) -> None:
    path = str(tmp_path / "o.db")
    h = Harness(path)
    h.manager()
    h.runtime("rt-1", "node1.bench", max_n=1)
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "c1", "plan": plan()}))
    h.store.close()
    # make it the store an orchestrator of version 1 left: no profile column, no user_version
    db = sqlite3.connect(path)
    db.executescript("ALTER TABLE cells DROP COLUMN profile; ALTER TABLE cells DROP COLUMN data; DROP TABLE results;"
                     " PRAGMA user_version = 0;")
    db.close()
    assert schema(path) == (0, schema(path)[1]) and "profile" not in schema(path)[1]
    h.restart()
    assert schema(path)[0] == VERSION and "profile" in schema(path)[1]
    assert status(h, "c1")["cells"] == 8
    # the migrated column is used: a resume (which clears it) and a profile hook work on it
    h.send(f"{R}/proc/control", envelope("resume_campaign", {"campaign": "c1"}))
    assert not [m for m in h.take(f"{R}/proc/log") if "error" in str(m)]


def test_an_unversioned_store_that_has_the_column_is_adopted(tmp_path: Any) -> None:
    path = str(tmp_path / "o.db")
    old_store(path, V1 + "ALTER TABLE cells ADD COLUMN profile BLOB;")
    Harness(path).store.close()
    assert schema(path)[0] == VERSION


def test_a_v1_store_gets_the_profile_column_and_takes_new_campaigns(tmp_path: Any) -> None:
    path = str(tmp_path / "o.db")
    old_store(path, V1)
    h = Harness(path)
    h.manager()
    h.runtime("rt-1", "node1.bench", max_n=1)
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "c2", "plan": plan()}))
    assert status(h, "c2")["running"] == 1
    h.store.close()
    assert schema(path)[0] == VERSION and "profile" in schema(path)[1]


def test_a_store_of_a_newer_orchestrator_is_refused_with_what_to_do(tmp_path: Any) -> None:
    path = str(tmp_path / "o.db")
    old_store(path, V1, VERSION + 1)
    store = Store(path)
    try:
        with pytest.raises(SchemaError, match=f"campaign schema version {VERSION + 1} is newer than this orchestrator's {VERSION}"):
            Orchestrator(store, lambda t, p: None, realm=R)
    finally:
        store.close()
    assert schema(path)[0] == VERSION + 1  # untouched
