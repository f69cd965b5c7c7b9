"""Module history (issue #27): every state a module went through, ended modules kept for a bounded
count and time, and the tail of each module's output.

- States: an SQLite trigger on `modules` writes a row of `module_history` (uuid, time, state, runtime,
  exit, the state before) at each change of state or runtime, inside the decision's transaction, so
  no code path can forget one. The first state comes from the module's row (its `created` time, and
  the state before the first change): no row per insert, so a 100k-cell campaign's one insert
  transaction costs no more than before (a trigger on insert made 20k creates 1.8x slower).
  `GET /api/history/UUID/` lists them.
- Ended modules (state D) are kept `keep` (count, newest first) and `keep_for` seconds (the
  orchestrator's `--keep-ended N` and `--keep-ended-for SEC`); the others are pruned once a
  minute, with their history. A benchmark campaign's cell keeps its module until the cell has an
  outcome (the campaign's state reads it).
- Output: the orchestrator subscribes to `{realm}/proc/stdio/+` (what modules print, as the node
  publishes it) and keeps the last `lines` lines of each module (`--log-lines N`) for the newest
  `modules` modules, in memory (lost when the orchestrator restarts), on paho's thread: no
  decision waits for it. `GET /api/logs/UUID/?tail=N` answers them, also after the module ended.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from orchestrator.core import Orchestrator

log = logging.getLogger("orch")

Answer = tuple[int, dict[str, Any]]

KEEP_ENDED = 10_000  # ended modules kept (newest)
KEEP_ENDED_FOR = 7 * 86400.0  # seconds an ended module is kept
LOG_LINES = 200  # lines of output kept per module
LOG_MODULES = 2_000  # modules whose output is kept (the most recently heard)
PRUNE_EVERY = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS module_history(
    uuid TEXT NOT NULL,
    time REAL NOT NULL,
    status TEXT NOT NULL,
    parent TEXT,
    exit BLOB,
    prev TEXT,
    prev_parent TEXT
);
CREATE INDEX IF NOT EXISTS module_history_uuid ON module_history(uuid, time);
DROP TRIGGER IF EXISTS module_history_insert;
DROP TRIGGER IF EXISTS module_history_update;
CREATE TRIGGER IF NOT EXISTS module_history_change AFTER UPDATE OF status, parent ON modules
WHEN old.status IS NOT new.status OR old.parent IS NOT new.parent BEGIN
    INSERT INTO module_history(uuid, time, status, parent, exit, prev, prev_parent)
    VALUES(new.uuid, new.updated, new.status, new.parent, new.exit, old.status, old.parent);
END;
"""


class History:
    """The triggers and the pruning of ended modules (the decision thread calls `tick`)."""

    def __init__(self, o: "Orchestrator") -> None:
        self.o = o
        self.keep = KEEP_ENDED
        self.keep_for = KEEP_ENDED_FOR
        self.next_prune = o.wallclock() + PRUNE_EVERY  # the first prune after the settings are in (__main__.py)
        self.pruned = 0
        conn = o.store.conn
        cols = {r[1] for r in conn.execute("PRAGMA table_info(module_history)")}
        if cols and "prev" not in cols:  # a store of this morning's first version
            conn.execute("ALTER TABLE module_history ADD COLUMN prev TEXT")
            conn.execute("ALTER TABLE module_history ADD COLUMN prev_parent TEXT")
        conn.executescript(SCHEMA)

    def tick(self) -> None:
        now = self.o.wallclock()
        if now < self.next_prune:
            return
        self.next_prune = now + PRUNE_EVERY
        self.prune(now)

    def prune(self, now: float) -> int:
        """Drop the ended modules beyond `keep` (oldest first) or older than `keep_for`; how many went."""
        conn = self.o.store.conn
        row = conn.execute("SELECT seq FROM modules WHERE status='D' ORDER BY seq DESC LIMIT 1 OFFSET ?",
                           (self.keep,)).fetchone()
        cut = row[0] if row else -1
        has_cells = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='cells'").fetchone()
        spare = " AND uuid NOT IN (SELECT module FROM cells WHERE module IS NOT NULL AND outcome IS NULL)" if has_cells else ""
        with self.o.store.transaction():
            gone = [r[0] for r in conn.execute(
                f"SELECT uuid FROM modules WHERE status='D' AND (seq <= ? OR updated < ?){spare}", (cut, now - self.keep_for))]
            conn.executemany("DELETE FROM module_history WHERE uuid=?", ((u,) for u in gone))
            conn.executemany("DELETE FROM modules WHERE uuid=?", ((u,) for u in gone))
        if gone:
            self.pruned += len(gone)
            log.info("history: %d ended modules pruned (kept: the newest %d, for %g s)", len(gone), self.keep, self.keep_for)
        return len(gone)


def route(conn: Any, rest: list[str]) -> Answer:
    """`GET /api/history/UUID/`: the module's states, oldest first."""
    if len(rest) != 1:
        return 404, {"error": "no such endpoint; try /api/history/UUID/"}
    mod = conn.execute("SELECT created, status, parent FROM modules WHERE uuid=?", (rest[0],)).fetchone()
    if mod is None:
        return 404, {"error": f"no module {rest[0]!r} (a full uuid; an ended one may have been pruned)"}
    rows = conn.execute("SELECT time, status, parent, exit, prev, prev_parent FROM module_history WHERE uuid=?"
                        " ORDER BY time, rowid", (rest[0],)).fetchall()
    import orjson
    first = {"time": mod[0], "status": rows[0][4] if rows else mod[1], "runtime": rows[0][5] if rows else mod[2], "exit": None}
    return 200, {"uuid": rest[0], "states": [first] + [{"time": r[0], "status": r[1], "runtime": r[2],
                                                         "exit": orjson.loads(r[3]) if r[3] else None} for r in rows]}


class Logs:
    """The newest output lines of each module, bounded; fed on paho's thread, read by REST threads."""

    def __init__(self, lines: int = LOG_LINES, modules: int = LOG_MODULES) -> None:
        self.lines = lines
        self.modules = modules
        self._lock = threading.Lock()
        self._logs: "OrderedDict[str, tuple[deque[tuple[float, str]], list[bytes]]]" = OrderedDict()

    def feed(self, uuid: str, payload: bytes) -> None:
        if self.lines <= 0:
            return
        now = time.time()
        with self._lock:
            entry = self._logs.get(uuid)
            if entry is None:
                entry = self._logs[uuid] = (deque(maxlen=self.lines), [b""])
                while len(self._logs) > self.modules:
                    self._logs.popitem(last=False)
            else:
                self._logs.move_to_end(uuid)
            ring, part = entry
            buf = part[0] + payload
            *done, part[0] = buf.split(b"\n")
            if len(part[0]) > 65536:  # a line without end: kept in pieces
                done.append(part[0])
                part[0] = b""
            ring.extend((now, ln.decode("utf-8", "replace")) for ln in done)

    def on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        """paho's callback for `{realm}/proc/stdio/+`."""
        try:
            self.feed(str(msg.topic).rsplit("/", 1)[1], bytes(msg.payload))
        except Exception:  # never break paho's thread
            log.exception("cannot keep output of %s", msg.topic)

    def tail(self, uuid: str, n: int) -> list[dict[str, Any]] | None:
        with self._lock:
            entry = self._logs.get(uuid)
            if entry is None:
                return None
            ring, part = entry
            out = [{"time": t, "line": s} for t, s in ring]
            if part[0]:
                out.append({"time": time.time(), "line": part[0].decode("utf-8", "replace"), "partial": True})
        return out[-n:] if n > 0 else []

    def answer(self, path: str, query: str) -> Answer:
        """`GET /api/logs/UUID/?tail=N` (default all kept)."""
        parts = [p for p in path.split("/") if p]
        if len(parts) != 3:
            return 404, {"error": "no such endpoint; try /api/logs/UUID/?tail=N"}
        q = parse_qs(query)
        try:
            n = int((q.get("tail") or [str(self.lines)])[0])
        except ValueError:
            return 400, {"error": "tail must be an integer (how many of the newest lines)"}
        got = self.tail(parts[2], n)
        return 200, {"uuid": parts[2], "kept": self.lines, "lines": got or [], "heard": got is not None}


LOGS = Logs()  # the process's output tails: `python -m orchestrator` adds `LOGS.on_message` as paho's callback for them
