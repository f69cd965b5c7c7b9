"""Which campaign cells have their data stored (issue #24: a cell is `done` only when its result is).

A cell's results are its `benchmarking-v3` / `interference-v2` messages (each with a result id and
its `part` [i, n]); the orchestrator hears them (hooks.on_profile) and the collector's acks
(`REALM/proc/stored/RUNTIME`, common/results.py) name the ids it has stored durably. Table
`results`: (runtime, id) -> the cell (campaign, idx, module), its part and part count, and
whether a collector said it is stored; the two may come in either order. `cells.data` is 1 once
every part of the cell's current module is stored (2: a cell whose results carry no ids, from
`benchmarking/opcodes` or a plan with `profile: seed`: not verifiable here, counted as done); a cell whose outcome is `done` without it is
shown as `data_pending` (views.py), neither done nor failed, and is not run again by a resume.
"""
from __future__ import annotations

import sqlite3
from typing import Sequence

ACK_ROWS_MAX = 1000  # ids of one ack looked at, at most (common/results.ACK_MAX_IDS)


class CellData:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.db = conn

    def on_result(self, runtime: str, rid: str, cid: str, idx: int, module: str, part: int, nparts: int) -> None:
        """A cell's result seen on its runtime's profile topic."""
        self.db.execute(
            "INSERT INTO results(runtime, id, campaign, idx, module, part, nparts) VALUES(?,?,?,?,?,?,?)"
            " ON CONFLICT(runtime, id) DO UPDATE SET campaign=excluded.campaign, idx=excluded.idx,"
            " module=excluded.module, part=excluded.part, nparts=excluded.nparts",
            (runtime, rid, cid, idx, module, part, nparts))
        self.refresh(cid, idx)

    def on_stored(self, runtime: str, ids: Sequence[str]) -> int:
        """A collector stored these results of `runtime`; returns how many cells now have all their data."""
        ids = [i for i in ids[:ACK_ROWS_MAX] if not i.startswith("sha256:")]  # the seed's layouts: not a cell's
        if not ids:
            return 0
        self.db.executemany("INSERT INTO results(runtime, id, stored) VALUES(?,?,1)"
                            " ON CONFLICT(runtime, id) DO UPDATE SET stored=1", [(runtime, i) for i in ids])
        marks = ",".join("?" * len(ids))
        cells = self.db.execute(f"SELECT DISTINCT campaign, idx FROM results WHERE runtime=? AND id IN ({marks})"
                                " AND campaign IS NOT NULL", (runtime, *ids)).fetchall()
        return sum(self.refresh(c, i) for c, i in cells)

    def refresh(self, cid: str, idx: int) -> bool:
        """Set `cells.data` of one cell from its current module's results; True when it became 1."""
        row = self.db.execute(
            "SELECT c.data, count(DISTINCT CASE WHEN r.stored THEN r.part END), max(r.nparts) FROM cells c"
            " LEFT JOIN results r ON r.campaign=c.campaign AND r.idx=c.idx AND r.module=c.module"
            " WHERE c.campaign=? AND c.idx=?", (cid, idx)).fetchone()
        if row is None or row[0] == 1:
            return False
        stored, nparts = int(row[1] or 0), int(row[2] or 0)
        if nparts and stored >= nparts:
            self.db.execute("UPDATE cells SET data=1 WHERE campaign=? AND idx=?", (cid, idx))
            return True
        return False

    def untracked(self, cid: str, idx: int) -> None:
        """A done cell whose results carry no ids (hooks.Campaigns._tracked): not verifiable, done."""
        self.db.execute("UPDATE cells SET data=2 WHERE campaign=? AND idx=? AND data IS NULL", (cid, idx))
