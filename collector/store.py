"""Turn profile messages into files, with the names and metadata of their runtime and module.

Names come from what the collector sees on the broker: runtime registrations (`proc/reg/#`) and
module create messages (`proc/control/#`); for an object it has not seen, it asks the
orchestrator's REST API when one answers, else the uuid stands in for the name. A payload that
does not decode is logged and written anyway, base64 in `raw_base64` with the `error`: never lost.

Delivery (docs/benchmarking.md, "Delivery"): a persistent MQTT session (fixed client id, clean
start off, session expiry), profiles at QoS 1 acknowledged by hand only once their file is durable
(temp file, fsync, rename, fsync of the directory), stored once per key (`message_key`), and a
store that cannot write holds the unacknowledged messages, says so once and retries.
"""
from __future__ import annotations

import base64
import collections
import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import sqlite3
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from benchmarking import layouts
from benchmarking.resultdb import DB_NAME, ResultDB, campaign_of
from common.broker import broker_list
from common.durable import fsync_dir, makedirs_durable
from common.results import ACK_MAX_IDS, encode_ack, profile_runtime, result_id, stored_topic

log = logging.getLogger("prof")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=@-]+")


def safe_name(name: str, limit: int = 64) -> str:
    """A file-name-safe version of a runtime or module name (`/` and spaces become `_`).

    At most `limit` characters (a hash of the whole name keeps long ones apart). Regression
    (chaos fuzz, profile): a 300-character module name in a profile topic made the file name
    longer than the file system allows and the store raised OSError.
    """
    safe = _UNSAFE.sub("_", name).strip("._") or "unnamed"
    if len(safe) > limit:
        safe = safe[: limit - 13] + "-" + hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return safe


def message_key(topic: str, payload: bytes) -> str:
    """The idempotence key of a profile message: stored once per key.

    A JSON payload with a top-level string `"id"` (a run result's id) is keyed by topic and id, so a
    re-sent result counts once even if its bytes differ; any other message by topic and content
    (SHA-256): the same bytes on the same topic are the same result delivered again.
    """
    if payload[:1] == b"{":
        try:
            rid = orjson.loads(payload).get("id")
        except (orjson.JSONDecodeError, AttributeError):
            rid = None
        if isinstance(rid, str) and rid:
            return hashlib.sha256(b"id\0" + topic.encode("utf-8", "surrogatepass") + b"\0" + rid.encode("utf-8", "surrogatepass")).hexdigest()
    return hashlib.sha256(b"sha\0" + topic.encode("utf-8", "surrogatepass") + b"\0" + payload).hexdigest()


def _db_error(e: sqlite3.Error, path: str) -> OSError:
    """An SQLite error as the OSError the collector's writer reports (full disk, read-only, ...)."""
    text = str(e)
    code = (errno.ENOSPC if "full" in text else errno.EROFS if "readonly" in text
            else errno.EACCES if "unable to open" in text else errno.EIO)
    return OSError(code, f"{os.strerror(code)} (SQLite: {text})", path)



def _created(payload: bytes, kind: str) -> dict[str, Any] | None:
    """The data of a `create` of a `kind` object (runtime, module) with a uuid, else None: the collector
    only learns names from these, and ignores whatever else it overhears."""
    try:
        msg = orjson.loads(payload)
        d = msg.get("data") or {}
        ok = msg.get("action") == "create" and d.get("type") == kind and d.get("uuid")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return d if ok and isinstance(d, dict) else None

_LIBC = ctypes.CDLL(None, use_errno=True)
_HAVE_SYNCFS = hasattr(_LIBC, "syncfs") and os.environ.get("SL_COLLECTOR_NO_SYNCFS") != "1"


def _write_file(path: str, data: bytes, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    except OSError as e:  # write/fsync errors carry no file name: name it
        raise OSError(e.errno, e.strerror, path) from e
    finally:
        os.close(fd)


def durable_write(path: str, data: bytes) -> None:
    """Write `path` so that it is complete or absent after a crash: `path.tmp`, fsync, rename, fsync
    of the directory. The temporary file is removed when any step fails (full disk: never left behind)."""
    tmp = path + ".tmp"
    try:
        _write_file(tmp, data, fsync=True)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(os.path.dirname(path) or ".")


class ProfileStore:
    """Knows runtimes and modules by uuid; writes one file per profile message, once per key.

    The key's marker `DIR/.stored/<key[:2]>/<key>` holds the data file's path (relative to DIR) and
    is written durably before the data file: a message whose marker names a file that holds its key
    is a duplicate (`duplicates` counts them); a marker whose file is missing (a crash between the
    two writes) is completed. Data files also carry their `key`.
    """

    def __init__(self, directory: str, lookup: Callable[[str, str], dict[str, Any] | None] | None = None,
                 *, files: bool = True) -> None:
        self.directory = directory
        self.files = files  # also one file per message (the layout the original collector and Pitot read)
        self.db: ResultDB | None = None  # DIR/results.sqlite, opened at the first store
        self.runtimes: dict[str, dict[str, Any]] = {}
        self.modules: dict[str, dict[str, Any]] = {}
        self.lookup = lookup  # (kind "runtimes"|"modules", uuid) -> REST object or None
        self.written: list[str] = []
        self.duplicates = 0
        self._lock = threading.Lock()

    # -- what the broker tells us

    def on_registration(self, payload: bytes) -> None:
        d = _created(payload, "runtime")
        if d is not None:
            self.runtimes[d["uuid"]] = {k: d.get(k) for k in ("uuid", "name", "runtime_type", "platform", "metadata", "parent", "apis")}

    def on_control(self, payload: bytes) -> None:
        d = _created(payload, "module")
        if d is not None:
            self.modules[d["uuid"]] = {k: d.get(k) for k in ("uuid", "name", "file", "args", "parent")}

    def _known(self, kind: str, table: dict[str, dict[str, Any]], uuid: str) -> dict[str, Any]:
        if uuid not in table and self.lookup is not None:
            found = self.lookup(kind, uuid)
            if found:
                table[uuid] = found
        return table.get(uuid) or {"uuid": uuid, "name": None}

    # -- profile messages

    def on_profile(self, topic: str, payload: bytes, realm: str, key: str | None = None, received: float | None = None) -> str:
        """Store one message of `{realm}/proc/profile/{type}/{runtime_uuid}/{module_uuid}` durably;
        return its file's path (the earlier file's for a duplicate). OSError when it cannot write.
        `received`: when it arrived (time.time(); default now), also the file's date folder."""
        return self.store_batch([(topic, payload, key, received)], realm)[0]

    def store_batch(self, items: list[tuple[str, bytes, str | None, float | None]], realm: str) -> list[str]:
        """Store several messages (topic, payload, key or None, received or None) durably, in one
        group commit; return their paths (files mode; else `DATA/results.sqlite#RUNTIME/ID`).
        Files mode: every temporary file written, synced; the new markers renamed, synced; the data
        files renamed, synced (`syncfs` of the data directory's file system, three times a batch,
        where the C library has it; else fsync of each file and directory). Then the results store
        (`results.sqlite`): one transaction for the batch, durable at its commit; a result it holds
        (runtime, id) is not stored again. OSError when it cannot write: then no temporary file is
        left and nothing counts as stored (markers already in place only reserve a path; the next
        delivery completes them, and fills in the store)."""
        with self._lock:
            db = self._db()
            todo: list[tuple[str, bytes, str | None, str]] = []  # (data path, body, marker path or None, log text)
            rows: list[tuple[Any, ...]] = []
            paths: list[str] = []
            taken: set[str] = set()
            batch_keys: dict[str, str] = {}
            for topic, payload, key, received in items:
                key = key or message_key(topic, payload)
                rid = result_id(topic, payload)
                rt_uuid = profile_runtime(realm, topic) or "unknown"
                known = batch_keys.get(key) or (self._stored_path(key) if self.files else
                                                (self._db_path(rt_uuid, rid) if db.stored(rt_uuid, [rid]) else None))
                if known is not None:
                    self.duplicates += 1
                    log.debug("%s: already stored (key %s), acknowledged again", known, key[:16])
                    paths.append(known)
                    if self.files and key not in batch_keys and not db.stored(rt_uuid, [rid]):
                        rows.append(self._row_of_file(known, rt_uuid, rid, topic))  # stored before the store knew it
                    continue
                record, body, text = self._record(topic, payload, realm, key, received)
                path = self._db_path(rt_uuid, rid)
                if self.files:
                    path, marker = self._place(key, record, taken)
                    taken.add(path)
                    todo.append((path, body, marker, text))
                else:
                    todo.append((path, b"", None, text))
                batch_keys[key] = path
                paths.append(path)
                cid, cell = campaign_of(record["module"])
                rows.append((rt_uuid, rid, record["type"], topic.rsplit("/", 1)[-1], record["received"], cid, cell,
                             orjson.dumps(record), os.path.relpath(path, self.directory) if self.files else None))
            if todo and self.files:
                self._commit(todo)
            try:
                db.insert(rows)
            except sqlite3.Error as e:
                raise _db_error(e, db.path) from e
        for path, _, _, text in todo:
            self.written.append(path)
            log.info("%s: %s", path, text)
        return paths

    def _db(self) -> ResultDB:
        if self.db is None:
            makedirs_durable(self.directory)
            try:
                self.db = ResultDB.open(os.path.join(self.directory, DB_NAME))
            except sqlite3.Error as e:
                raise _db_error(e, os.path.join(self.directory, DB_NAME)) from e
        return self.db

    def _db_path(self, rt_uuid: str, rid: str) -> str:
        return f"{os.path.join(self.directory, DB_NAME)}#{rt_uuid}/{rid}"

    def _row_of_file(self, path: str, rt_uuid: str, rid: str, topic: str) -> tuple[Any, ...]:
        with open(path, "rb") as f:
            record = orjson.loads(f.read())
        cid, cell = campaign_of(record.get("module") or {})
        return (rt_uuid, rid, str(record.get("type")), topic.rsplit("/", 1)[-1], float(record.get("received") or 0.0),
                cid, cell, orjson.dumps(record), os.path.relpath(path, self.directory))

    def _record(self, topic: str, payload: bytes, realm: str, key: str,
                received: float | None) -> tuple[dict[str, Any], bytes, str]:
        parts = topic.split("/")
        prefix = realm.split("/")
        rest = parts[len(prefix) + 2:]
        if parts[:len(prefix) + 2] != prefix + ["proc", "profile"] or len(rest) != 3 or not all(rest):
            log.error("profile message on unexpected topic %r (want %s/proc/profile/TYPE/RUNTIME/MODULE): kept raw", topic, realm)
            rest = (rest + ["unknown"] * 3)[:3] if rest else ["unknown", "unknown", "unknown"]
            ptype, rt_uuid, mod_uuid = (safe_name(x) for x in rest)
            error: str | None = f"unexpected topic {topic!r}"
            data = None
        else:
            ptype, rt_uuid, mod_uuid = rest
            try:
                data, error = layouts.decode(ptype, payload), None
            except layouts.PayloadError as e:
                data, error = None, str(e)
                log.error("cannot decode %s payload of module %s (%d bytes): %s; kept raw", ptype, mod_uuid, len(payload), e)
        rt = self._known("runtimes", self.runtimes, rt_uuid)
        mod = self._known("modules", self.modules, mod_uuid)
        now = time.time() if received is None else received
        record: dict[str, Any] = {
            "type": ptype, "topic": topic, "received": now, "key": key, "runtime": rt, "module": mod,
        }
        if error is None:
            record["data"] = data
        else:
            record["error"] = error
            record["raw_base64"] = base64.b64encode(payload).decode()
        text = f"{ptype} profile of {mod.get('name') or mod_uuid} on {rt.get('name') or rt_uuid}"
        body = orjson.dumps(record, option=orjson.OPT_INDENT_2) if self.files else b""
        return record, body, text

    def _place(self, key: str, record: dict[str, Any], taken: set[str]) -> tuple[str, str | None]:
        """The data file of a new record and its key marker (None: a marker left by a crash names it)."""
        path = self._reserved_free_path(key)  # a marker left by a crash before its data file
        if path is not None and path not in taken:
            makedirs_durable(os.path.dirname(path))
            return path, None
        rt, mod = record["runtime"], record["module"]
        day = time.strftime("%Y-%m-%d", time.gmtime(record["received"]))
        folder = os.path.join(self.directory, day, safe_name(rt.get("name") or rt["uuid"]))
        base = f"{safe_name(mod.get('name') or mod['uuid'])}.{safe_name(mod['uuid'])}.{safe_name(record['type'])}"
        makedirs_durable(folder)
        path = os.path.join(folder, base + ".json")
        n = 1
        while os.path.exists(path) or path in taken:  # several messages of one type for one module: number them
            path = os.path.join(folder, f"{base}.{n}.json")
            n += 1
        marker = self._marker(key)
        makedirs_durable(os.path.dirname(marker))
        return path, marker

    def _commit(self, todo: list[tuple[str, bytes, str | None, str]]) -> None:
        writes: list[tuple[str, bytes]] = []
        for path, body, marker, _ in todo:
            if marker is not None:
                writes.append((marker, os.path.relpath(path, self.directory).encode()))
            writes.append((path, body))
        tmps: list[str] = []
        try:
            for path, data in writes:
                tmps.append(path + ".tmp")
                _write_file(path + ".tmp", data, fsync=not _HAVE_SYNCFS)
            self._sync([])  # the contents
            markers = [(m, m) for _, _, m, _ in todo if m is not None]
            for m, _ in markers:
                os.replace(m + ".tmp", m)
            self._sync([os.path.dirname(m) for m, _ in markers])  # the markers before the files they name
            for path, _, _, _ in todo:
                os.replace(path + ".tmp", path)
            self._sync([os.path.dirname(p) for p, _, _, _ in todo])
        except BaseException:
            for t in tmps:
                try:
                    os.unlink(t)
                except OSError:
                    pass
            raise

    def _sync(self, dirs: list[str]) -> None:
        """syncfs of the data directory's file system; without syncfs, fsync of `dirs` (files were
        synced as they were written)."""
        if _HAVE_SYNCFS:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                if _LIBC.syncfs(fd) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, os.strerror(e), self.directory)
            finally:
                os.close(fd)
            return
        for d in sorted(set(dirs)):
            fsync_dir(d)

    def _marker(self, key: str) -> str:
        return os.path.join(self.directory, ".stored", key[:2], key)

    def _marker_target(self, key: str) -> str | None:
        try:
            with open(self._marker(key), "rb") as f:
                rel = f.read().decode("utf-8", "surrogateescape").strip()
        except FileNotFoundError:
            return None
        if not rel or os.path.isabs(rel) or rel.split(os.sep)[0] == "..":
            return None
        return os.path.join(self.directory, rel)

    def _stored_path(self, key: str) -> str | None:
        """The file that already holds `key`, if any."""
        path = self._marker_target(key)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                held = orjson.loads(f.read()).get("key")
        except (FileNotFoundError, orjson.JSONDecodeError, AttributeError):
            return None
        return path if held == key else None

    def _reserved_free_path(self, key: str) -> str | None:
        """The path a marker reserved for `key` whose file was never written (else None)."""
        path = self._marker_target(key)
        return path if path is not None and not os.path.exists(path) else None

    def sweep_temporaries(self) -> int:
        """Remove the temporary files (`*.json.tmp`, `.stored/**.tmp`) a killed collector left; return how many."""
        n = 0
        markers = os.path.join(self.directory, ".stored")
        for root, _dirs, files in os.walk(self.directory):
            for name in files:
                if name.endswith(".json.tmp") or (name.endswith(".tmp") and root.startswith(markers)):
                    try:
                        os.unlink(os.path.join(root, name))
                        n += 1
                    except OSError:
                        pass
        return n


def rest_lookup(base_url: str, timeout: float = 1.0) -> Callable[[str, str], dict[str, Any] | None]:
    """A lookup that asks the orchestrator (`GET /api/{kind}/{uuid}/`); None when it does not answer."""
    def lookup(kind: str, uuid: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{base_url}/api/{kind}/{uuid}/", timeout=timeout) as r:
                obj = json.loads(r.read())
        except (OSError, ValueError):
            return None
        return obj if isinstance(obj, dict) else None
    return lookup


# what to do about a store that cannot write, by errno
_ADVICE = {
    errno.ENOSPC: "free space on its file system (df {dir})",
    errno.EDQUOT: "raise the quota or free space (quota -v)",
    errno.EACCES: "let user {uid} write there (ls -ld {dir}) or give -d another directory",
    errno.EPERM: "let user {uid} write there (ls -ld {dir}) or give -d another directory",
    errno.EROFS: "remount it read-write or give -d another directory",
}
SESSION_EXPIRY = 7 * 24 * 3600  # s the broker keeps the session (and its queue) of an absent collector
TAKEOVER_WINDOW = 10.0  # s: a connection lost sooner than this after it was made counts as a "quick loss"
TAKEOVER_LOSSES = 3  # quick losses in a row that mean another client uses our client id
HELD_MAX = 2000  # profiles held in memory unacknowledged at most (and HELD_BYTES): the broker may send
HELD_BYTES = 64 << 20  # more than RECEIVE_MAXIMUM (mosquitto 2.0 does); beyond, see _on_message
RECEIVE_MAXIMUM = 100  # unacknowledged QoS 1 messages the broker may have out to us at once (MQTT v5),
# also the most one group commit stores


class CollectorBusy(RuntimeError):
    """Another collector on this host uses the same data directory or client id."""


def default_client_id(realm: str, directory: str) -> str:
    """`sl-collector-REALM-HOST-HASH`, HASH from the data directory's real path: the same collector
    (same realm, host and -d) gets the same session after a restart, another -d another session."""
    digest = hashlib.sha1(os.path.realpath(directory).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"sl-collector-{safe_name(realm, 24)}-{safe_name(socket.gethostname(), 32)}-{digest}"


@dataclass
class _Held:
    """A profile message received and not yet acknowledged (it waits for a durable write)."""
    key: str
    topic: str
    payload: bytes
    mid: int
    qos: int
    conn: int  # the connection it came on: a message id is acknowledged on that connection only
    received: float  # time.time() of its arrival


class Collector:
    """The MQTT side: a persistent session whose profiles a writer thread stores and then acknowledges.

    paho's network thread decodes names (registrations, module creates: QoS 0, not queued for an
    absent collector) and appends profile messages (QoS 1) to `held`; the writer stores up to
    RECEIVE_MAXIMUM of them in one group commit and acknowledges them (`client.ack`) only once their
    files are durable. While the store cannot write, nothing is acknowledged; the writer retries
    every `retry` s. A broker does not send an unacknowledged message again on the same connection
    (MQTT 5, 4.4), so the held ones are kept here, at most `held_max` / `held_bytes` (the broker may
    send more than RECEIVE_MAXIMUM); the ones beyond are not held, and once the writer has caught up
    it reconnects (same session) so that the broker sends them again. After any reconnect the broker
    re-sends what is unacknowledged with the same key (stored once); copies held from the old
    connection are written but not acknowledged (their message ids belong to that connection).
    """

    def __init__(self, store: ProfileStore, host: str, port: int, realm: str = "realm", *,
                 username: str | None = None, password: str | None = None, client_id: str | None = None,
                 session_expiry: int = SESSION_EXPIRY, retry: float = 1.0, held_max: int = HELD_MAX,
                 held_bytes: int = HELD_BYTES) -> None:
        self.store = store
        self.realm = realm
        self.client_id = client_id or default_client_id(realm, store.directory)
        self.session_expiry = session_expiry
        self.retry = retry
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5, manual_ack=True)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.brokers = broker_list(host, port)  # `host` may be a list to fail over between (common/broker.py)
        self._at = 0
        self.host, self.port = self.brokers[0]
        self.ready = threading.Event()
        self.fatal: str | None = None  # why the collector must stop (its session was taken over)
        self.on_fatal: Callable[[], None] = lambda: None
        self.held: collections.deque[_Held] = collections.deque()
        self.held_max, self.held_bytes_max = held_max, held_bytes
        self._held_bytes = 0
        self.not_held = 0  # received beyond the bound since the last reconnect: the broker sends them again
        self.reconnects = 0
        self._reconnecting = False
        self.acked = 0
        self.announced = 0  # result ids named in ack messages (proc/stored/RUNTIME)
        self.batches = 0
        self.failed_attempts = 0
        self.failure: tuple[int, float] | None = None  # (errno, since) while the store cannot write
        self._cv = threading.Condition()
        self._conn = 0
        self._connected_once = False
        self._connected_at = 0.0
        self._quick_losses = 0
        self._stopping = False
        self._writer: threading.Thread | None = None
        self._locks: list[tuple[int, str]] = []

    # -- connection

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            log.error("broker %s:%d refused the connection of %s: %s", self.host, self.port, self.client_id, rc)
            return
        with self._cv:
            self._conn += 1
        self._connected_at = time.monotonic()
        r = self.realm
        if not flags.session_present:
            if self._connected_once:
                log.warning("the broker at %s:%d kept no session for %s: profiles published since the collector "
                            "lost it are gone (a broker restart with `persistence false`, or a session older than "
                            "its expiry); a campaign's `--status` shows the cells whose data is missing",
                            self.host, self.port, self.client_id)
            else:
                log.info("new session %s on %s:%d (kept %d s after a disconnect)", self.client_id, self.host, self.port, self.session_expiry)
        self._connected_once = True
        c.on_subscribe = lambda *a: self.ready.set()
        c.subscribe([(f"{r}/proc/profile/#", 1), (f"{r}/proc/reg/#", 0), (f"{r}/proc/control/#", 0)])
        log.info("collecting %s/proc/profile/# from %s:%d into %s (session %s)", r, self.host, self.port,
                 self.store.directory, self.client_id)

    def _on_disconnect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self.ready.clear()  # set again by the next connection's SUBACK
        with self._cv:
            self._conn += 1  # acknowledgements of the old connection's message ids are void
        if self._stopping or self._reconnecting:
            return
        lasted = time.monotonic() - self._connected_at
        self._quick_losses = self._quick_losses + 1 if lasted < TAKEOVER_WINDOW else 1
        # A client with our id connecting takes the session: MQTT 5 brokers may say so (reason 142,
        # Session taken over); mosquitto 2.0 just closes the older connection. Both collectors then
        # reconnect in turn and take it from each other every second; the older one reaches
        # TAKEOVER_LOSSES first (its first loss started the count) and stops, the newcomer stays.
        if rc == 142 or self._quick_losses >= TAKEOVER_LOSSES:
            self.fatal = (f"the broker {self.host}:{self.port} closed this collector's connection "
                          f"{self._quick_losses} times in a row right after it connected ({rc}): another client "
                          f"connected with the client id {self.client_id!r} and took over its session; two "
                          f"collectors with one id take it from each other in turn. Stop the other one, or give each "
                          f"its own --client-id (then each stores every profile); this one stops")
            log.error("%s", self.fatal)
            c.disconnect()  # no reconnect
            self.on_fatal()
        else:
            log.warning("lost the broker %s:%d (%s); reconnecting, the session keeps what is published meanwhile", self.host, self.port, rc)
            self._next_broker(c)

    def _on_connect_fail(self, c: Any, u: Any) -> None:
        if not self._stopping:
            self._next_broker(c)

    def _next_broker(self, c: Any) -> None:
        """A list of brokers: paho's reconnect goes to the next one (its setters refuse while the
        connection is "lost", so its address is set directly)."""
        if len(self.brokers) > 1:
            self._at = (self._at + 1) % len(self.brokers)
            self.host, self.port = self.brokers[self._at]
            c._host, c._port = self.host, self.port
            log.info("trying the next broker, %s:%d", self.host, self.port)

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        t = msg.topic
        if t.startswith(f"{self.realm}/proc/profile/"):
            payload = bytes(msg.payload)
            key = message_key(t, payload)
            with self._cv:
                for h in self.held:
                    if h.key == key:  # sent again (after a reconnect): acknowledge the new id
                        h.mid, h.qos, h.conn = msg.mid, msg.qos, self._conn
                        break
                else:
                    self._trim_held()
                    if len(self.held) >= self.held_max or self._held_bytes + len(payload) > self.held_bytes_max:
                        # not held, not acknowledged: the broker keeps it in flight and sends it again
                        # on the reconnect the writer makes once it has caught up
                        self.not_held += 1
                        if self.not_held == 1:
                            (log.debug if self.reconnects else log.warning)("holding %d unacknowledged profiles (%d bytes), as many as the collector keeps "
                                        "in memory; the broker keeps the others and sends them again when the "
                                        "collector reconnects after catching up", len(self.held), self._held_bytes)
                    else:
                        self.held.append(_Held(key, t, payload, msg.mid, msg.qos, self._conn, time.time()))
                        self._held_bytes += len(payload)
                self._cv.notify_all()
            return
        try:
            if t.startswith(f"{self.realm}/proc/reg/"):
                self.store.on_registration(bytes(msg.payload))
            elif t.startswith(f"{self.realm}/proc/control/"):
                self.store.on_control(bytes(msg.payload))
        except Exception:  # never let one message kill the collector
            log.exception("error reading message on %s", msg.topic)
        finally:
            if msg.qos:
                c.ack(msg.mid, msg.qos)

    def _trim_held(self) -> None:
        """Bound `held`: beyond `held_max`, drop the oldest from earlier connections (the broker's
        session still has them and sends them again)."""
        excess = len(self.held) - self.held_max
        if excess > 0:
            keep = [h for h in self.held if h.conn == self._conn]
            stale = [h for h in self.held if h.conn != self._conn][excess:]
            self.held = collections.deque(stale + keep)
            self._held_bytes = sum(len(h.payload) for h in self.held)

    # -- the writer

    def _write_loop(self) -> None:
        while True:
            with self._cv:
                while not self.held and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                batch = list(self.held)[:RECEIVE_MAXIMUM]  # one group commit for what has arrived
            try:
                self.store.store_batch([(h.topic, h.payload, h.key, h.received) for h in batch], self.realm)
            except OSError as e:
                self._cannot_write(e)
                with self._cv:
                    self._cv.wait_for(lambda: self._stopping, timeout=self.retry)
                continue
            except Exception:  # a bug: keep the messages (unacknowledged), say so once, retry
                if self.failure is None or self.failure[0] != -1:
                    log.exception("error storing the profiles from %s on; not acknowledged, retrying every %g s", batch[0].topic, self.retry)
                    self.failure = (-1, time.monotonic())
                with self._cv:
                    self._cv.wait_for(lambda: self._stopping, timeout=self.retry)
                continue
            with self._cv:
                done = {id(h) for h in batch}
                self.held = collections.deque(h for h in self.held if id(h) not in done)
                self._held_bytes = sum(len(h.payload) for h in self.held)
                for h in batch:  # in arrival order
                    if h.conn == self._conn and h.qos:
                        self.client.ack(h.mid, h.qos)
                        self.acked += 1
                waiting = len(self.held)
                self.batches += 1
                resend, self.not_held = (self.not_held, 0) if not self.held and self.not_held else (0, self.not_held)
            self._announce(batch)
            if self.failure is not None:
                log.info("storing profiles in %s again (failing for %.1f s); %d more held to store",
                         self.store.directory, time.monotonic() - self.failure[1], waiting)
                self.failure = None
            if resend:
                self._reconnect(resend)

    def _announce(self, batch: list[_Held]) -> None:
        """Tell the nodes (and the orchestrator) which results are stored durably: one ack message per
        runtime on `REALM/proc/stored/RUNTIME` (common/results.py). Duplicates are named again: their
        node sent them again because it had not heard the first ack."""
        by_rt: dict[str, list[str]] = {}
        for h in batch:
            rt = profile_runtime(self.realm, h.topic)
            if rt is not None:
                by_rt.setdefault(rt, []).append(result_id(h.topic, h.payload))
        for rt, ids in by_rt.items():
            for i in range(0, len(ids), ACK_MAX_IDS):
                self.client.publish(stored_topic(self.realm, rt), encode_ack(self.client_id, ids[i:i + ACK_MAX_IDS]), 1)
        self.announced += sum(len(v) for v in by_rt.values())

    def _reconnect(self, resend: int) -> None:
        """Disconnect and connect again (the session stays) so that the broker sends the messages it
        has in flight and the collector did not hold: a broker sends an unacknowledged message again
        only on a new connection (MQTT 5, 4.4)."""
        log.info("caught up; reconnecting so that the broker sends again the %d profiles the collector did not hold", resend)
        self._reconnecting = True
        try:
            self.client.disconnect()
            self.client.loop_stop()
            # loop_stop leaves the loop's wake-up socket pair open and loop_start makes a new one, dropping
            # the old pair to the garbage collector (eclipse-paho/paho.mqtt.python#627): close it now
            self.client._reset_sockets(sockpair_only=True)
            if self._stopping:
                return
            self.reconnects += 1
            try:
                self.client.reconnect()
            except OSError as e:
                log.warning("reconnecting to %s:%d: %s; retrying in the background", self.host, self.port, e)
        finally:
            self._reconnecting = False
            if not self._stopping:
                self.client.loop_start()

    def _cannot_write(self, e: OSError) -> None:
        code = e.errno or 0
        self.failed_attempts += 1
        if self.failure is not None and self.failure[0] == code:
            log.debug("still cannot store profiles in %s (%s, attempt %d, %d held)", self.store.directory,
                      errno.errorcode.get(code, code), self.failed_attempts, len(self.held))
            return
        self.failure = (code, time.monotonic())
        d = self.store.directory
        advice = _ADVICE.get(code, "fix the file system or give -d another directory").format(dir=d, uid=os.geteuid())
        name = errno.errorcode.get(code, str(code))
        log.error("cannot store profiles in %s: %s %s at %s; nothing is acknowledged, the broker keeps the "
                  "messages (up to its max_queued_messages) and the collector retries every %g s: %s",
                  d, name, e.strerror or e, e.filename or d, self.retry, advice)

    # -- life cycle

    def _claim(self) -> None:
        """One collector per data directory and per client id on this host: a lock file each in the
        temp dir, removed again by `stop()` (a lock taken on a file that was removed meanwhile is
        taken again on the new one)."""
        for what, value in (("data directory", os.path.realpath(self.store.directory)), ("client id", self.client_id)):
            name = "sl-collector-" + hashlib.sha1(f"{what}\0{value}".encode("utf-8", "surrogateescape")).hexdigest()[:16] + ".lock"
            path = os.path.join(tempfile.gettempdir(), name)
            while True:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    self._release()
                    raise CollectorBusy(f"another collector (pid {other}) already uses the {what} {value!r} on this host; "
                                        f"stop it, or give this one another -d and --client-id") from None
                try:
                    if os.stat(path).st_ino == os.fstat(fd).st_ino:
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)  # its holder removed it while we waited: lock the new file
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self._locks.append((fd, path))

    def _release(self) -> None:
        for fd, path in self._locks:
            try:
                os.unlink(path)
            except OSError:
                pass
            os.close(fd)
        self._locks = []

    def start(self, timeout: float = 10.0) -> "Collector":
        self._claim()
        try:
            swept = self.store.sweep_temporaries()
        except OSError:
            swept = 0
        if swept:
            log.info("removed %d temporary files an interrupted collector left in %s", swept, self.store.directory)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self._writer = threading.Thread(target=self._write_loop, name="collector-writer", daemon=True)
        self._writer.start()
        try:
            for i, (host, port) in enumerate(self.brokers):  # the first that accepts the connection
                try:
                    self._at, self.host, self.port = i, host, port
                    self.client.connect(host, port, clean_start=False, properties=props)
                    break
                except OSError:
                    if i == len(self.brokers) - 1:
                        raise
            self.client.loop_start()
            if not self.ready.wait(timeout):
                raise TimeoutError(f"could not subscribe on {self.host}:{self.port} within {timeout}s")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._writer is not None:
            self._writer.join(30)
        self.client.disconnect()  # the session stays for session_expiry s
        self.client.loop_stop()
        if self.store.db is not None:
            self.store.db.close()
            self.store.db = None
        self._release()
