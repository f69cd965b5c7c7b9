"""The node's durable spool of results: kept on disk until a collector says it has stored them (a leaf).

Every profile message a runtime sends is a result (common/results.py gives its id). The router
appends it here (`add`); right before the supervisor's loop flushes MQTT, `commit` makes the new
records durable (one fdatasync for all that came in that turn: a group commit) and only then are
they published. An ack (`REALM/proc/stored/RUNTIME`, from a collector after its own durable
write) names result ids: `ack` forgets them. What is not acknowledged is published again: all of
it when the broker connection is made again (`resend_all`), and each result again after
RESEND_FIRST s, doubling per try up to RESEND_MAX (`due`), so a node without a collector does not
flood the broker. A node restarted (or SIGKILLed) reads its spool back and sends what it holds.

File: one append-only log, `STATE_DIR/NAME.spool`. A record: magic (`SLR1` result, `SLA1` ack),
body length (u32), CRC-32 of the body (u32), body. A result's body: id length (u16), topic length
(u16), id, topic, payload; an ack's: the ids, one per line. Acks are not synced (a lost ack only
means the result is sent again, and the collector stores it once). A torn tail (a kill during a
write) is cut off when the file is read back. When nothing is held the file is truncated; when
it is over COMPACT_FACTOR times the bytes held (and over COMPACT_MIN), it is rewritten (temporary
file, fsync, rename, fsync of the directory).

Bound: `max_bytes` of held results. A result beyond it is published without being spooled (a
`WRN` line per episode, counted in `overflow`): a node with no collector for days must not fill
its disk; the broker's session of the collector still queues what is published.
"""
from __future__ import annotations

import heapq
import logging
import os
import struct
import zlib
from dataclasses import dataclass

from common.durable import fsync_dir

log = logging.getLogger("mgr")

HEAD = struct.Struct("<4sII")
RESULT, ACK = b"SLR1", b"SLA1"
RBODY = struct.Struct("<HH")
MAX_BYTES = 256 << 20
RESEND_FIRST = 30.0
RESEND_MAX = 900.0
COMPACT_FACTOR = 4
COMPACT_MIN = 1 << 20


class SpoolError(OSError):
    pass


@dataclass
class _Held:
    topic: str
    offset: int  # of the payload in the file
    size: int  # payload bytes
    due: float  # when it is published again (monotonic; 0.0 = not published yet)
    tries: int


class Spool:
    def __init__(self, path: str, *, max_bytes: int = MAX_BYTES, resend_first: float = RESEND_FIRST,
                 resend_max: float = RESEND_MAX) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.resend_first, self.resend_max = resend_first, resend_max
        self.held: dict[str, _Held] = {}  # id -> where its record is, in arrival order
        self.bytes = 0
        self.overflow = 0  # results published without the spool (it was full)
        self.acked = 0
        self.resent = 0
        self._full = False
        self._fresh: dict[str, None] = {}  # added, not yet committed
        self._heap: list[tuple[float, str]] = []  # (due, id); an entry whose due is not its result's is stale
        self._fd = -1
        self._end = 0

    @classmethod
    def of(cls, state_dir: str | None, name: str, max_bytes: int) -> "Spool | None":
        """A node's spool, `STATE_DIR/NAME.spool`; None without a state dir or with `max_bytes` 0."""
        return cls(os.path.join(state_dir, f"{name}.spool"), max_bytes=max_bytes) if state_dir and max_bytes else None

    # ------------------------------------------------------------------ file

    def open(self, readonly: bool = False) -> int:
        """Read the spool back (cutting a torn tail); returns how many results it holds. `readonly`:
        only read (another process may own it: tests, `manage.py`), the file is left as it is."""
        if readonly:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        else:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0) if size else b""
        off = 0
        while off + HEAD.size <= len(data):
            magic, n, crc = HEAD.unpack_from(data, off)
            body = data[off + HEAD.size: off + HEAD.size + n]
            if magic not in (RESULT, ACK) or len(body) != n or zlib.crc32(body) != crc:
                break
            if magic == RESULT:
                il, tl = RBODY.unpack_from(body)
                rid = body[RBODY.size:RBODY.size + il].decode()
                topic = body[RBODY.size + il:RBODY.size + il + tl].decode()
                psize = n - RBODY.size - il - tl
                if rid not in self.held:
                    self.held[rid] = _Held(topic, off + HEAD.size + RBODY.size + il + tl, psize, 0.0, 0)
                    self.bytes += psize
            else:
                for rid in body.decode().split("\n"):
                    h = self.held.pop(rid, None)
                    if h is not None:
                        self.bytes -= h.size
            off += HEAD.size + n
        if readonly:
            return len(self.held)
        if off < size:
            log.warning("spool %s: cut a torn record at byte %d of %d (a kill during a write; that result had not "
                        "been published)", self.path, off, size)
            os.ftruncate(self._fd, off)
            os.fsync(self._fd)
        self._end = off
        if not self.held and off:
            self._truncate()
        elif os.fstat(self._fd).st_size > COMPACT_MIN and self._end > COMPACT_FACTOR * self.bytes:
            self._compact()
        return len(self.held)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _append(self, magic: bytes, body: bytes) -> int:
        rec = HEAD.pack(magic, len(body), zlib.crc32(body)) + body
        start = self._end
        view = memoryview(rec)
        pos = start
        try:
            while view:
                k = os.pwrite(self._fd, view, pos)
                view, pos = view[k:], pos + k
        except OSError:
            os.ftruncate(self._fd, start)  # nothing half-written stays
            raise
        self._end = pos
        return start

    def _truncate(self) -> None:
        os.ftruncate(self._fd, 0)
        self._end = 0

    def _compact(self) -> None:
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        pos = 0
        moved: dict[str, _Held] = {}
        try:
            for rid, h in self.held.items():
                payload = os.pread(self._fd, h.size, h.offset)
                ib, tb = rid.encode(), h.topic.encode()
                body = RBODY.pack(len(ib), len(tb)) + ib + tb + payload
                rec = HEAD.pack(RESULT, len(body), zlib.crc32(body)) + body
                os.pwrite(fd, rec, pos)
                moved[rid] = _Held(h.topic, pos + HEAD.size + RBODY.size + len(ib) + len(tb), h.size, h.due, h.tries)
                pos += len(rec)
            os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        os.close(self._fd)
        self._fd, self._end, self.held = fd, pos, moved

    # ------------------------------------------------------------------ results

    def add(self, rid: str, topic: str, payload: bytes) -> bool:
        """Append a result (durable at the next `commit`); False when it is not spooled: already held
        (sent again by its runtime) or the spool is full (then publish it anyway)."""
        if rid in self.held:
            return False
        if self.bytes + len(payload) > self.max_bytes:
            self.overflow += 1
            if not self._full:
                self._full = True
                log.warning("spool %s is full (%d results, %d bytes, the most it keeps: --spool-max): results are "
                            "published without it until a collector acknowledges some; is a collector running?",
                            self.path, len(self.held), self.bytes)
            return False
        ib, tb = rid.encode(), topic.encode()
        start = self._append(RESULT, RBODY.pack(len(ib), len(tb)) + ib + tb + payload)
        self.held[rid] = _Held(topic, start + HEAD.size + RBODY.size + len(ib) + len(tb), len(payload), 0.0, 0)
        self.bytes += len(payload)
        self._fresh[rid] = None
        return True

    def commit(self, now: float, sync: bool = True) -> list[tuple[str, bytes]]:
        """Make the added results durable (one fdatasync; `sync` False: after a failed one, they stay
        held and are sent again until acknowledged); return them, (topic, payload), to publish."""
        if not self._fresh:
            return []
        if sync:
            os.fdatasync(self._fd)
        fresh, self._fresh = [rid for rid in self._fresh if rid in self.held], {}
        return self._take(fresh, now)

    def ack(self, ids: list[str]) -> int:
        """Forget the results `ids` names (ids it does not hold are ignored); returns how many it held."""
        gone = [rid for rid in ids if rid in self.held and rid not in self._fresh]
        if not gone:
            return 0
        for rid in gone:
            self.bytes -= self.held.pop(rid).size
        self.acked += len(gone)
        if self._full and self.bytes < self.max_bytes // 2:
            self._full = False
            log.info("spool %s has room again (%d results held)", self.path, len(self.held))
        if not self.held:
            self._truncate()
            self._heap = []
        elif self._end > COMPACT_MIN and self._end > COMPACT_FACTOR * self.bytes:
            self._compact()
        else:
            self._append(ACK, "\n".join(gone).encode())
        return len(gone)

    def resend_all(self, now: float) -> int:
        """A new connection: every held result is due now (`due` hands them out); returns how many."""
        self._heap = []
        for rid, h in self.held.items():
            if rid not in self._fresh:
                h.due = now
                self._heap.append((now, rid))
        heapq.heapify(self._heap)
        return len(self._heap)

    def due(self, now: float, limit: int) -> list[tuple[str, bytes]]:
        """The held results whose time to be sent (again) has come, the oldest first, at most `limit`."""
        ids: list[str] = []
        while self._heap and self._heap[0][0] <= now and len(ids) < limit:
            t, rid = heapq.heappop(self._heap)
            h = self.held.get(rid)
            if h is not None and h.due == t:
                ids.append(rid)
        out = self._take(ids, now)
        self.resent += len(out)
        return out

    def next_due(self) -> float | None:
        """When the earliest held result is due (monotonic), None when none is."""
        while self._heap:
            t, rid = self._heap[0]
            h = self.held.get(rid)
            if h is not None and h.due == t:
                return t
            heapq.heappop(self._heap)
        return None

    def _take(self, ids: list[str], now: float) -> list[tuple[str, bytes]]:
        out = []
        for rid in ids:
            h = self.held[rid]
            h.tries += 1
            h.due = now + min(self.resend_max, self.resend_first * 2 ** (h.tries - 1))
            heapq.heappush(self._heap, (h.due, rid))
            out.append((h.topic, os.pread(self._fd, h.size, h.offset)))
        return out

    def report(self) -> dict[str, int]:
        return {"held": len(self.held), "bytes": self.bytes, "acked": self.acked, "resent": self.resent,
                "overflow": self.overflow}
