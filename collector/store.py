"""Turn profile messages into files, with the names and metadata of their runtime and module.

Names come from what the collector sees on the broker: runtime registrations (`proc/reg/#`) and
module create messages (`proc/control/#`); for an object it has not seen, it asks the
orchestrator's REST API when one answers, else the uuid stands in for the name. A payload that
does not decode is logged and written anyway, base64 in `raw_base64` with the `error`: never lost.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
import urllib.request
from typing import Any, Callable

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from runtimes.benchmarking import payloads

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
        import hashlib
        safe = safe[: limit - 13] + "-" + hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return safe


class ProfileStore:
    """Knows runtimes and modules by uuid; writes one file per profile message."""

    def __init__(self, directory: str, lookup: Callable[[str, str], dict[str, Any] | None] | None = None) -> None:
        self.directory = directory
        self.runtimes: dict[str, dict[str, Any]] = {}
        self.modules: dict[str, dict[str, Any]] = {}
        self.lookup = lookup  # (kind "runtimes"|"modules", uuid) -> REST object or None
        self.written: list[str] = []
        self._lock = threading.Lock()

    # -- what the broker tells us

    def on_registration(self, payload: bytes) -> None:
        try:
            msg = orjson.loads(payload)
            d = msg.get("data") or {}
        except (orjson.JSONDecodeError, AttributeError):
            return
        if msg.get("action") == "create" and d.get("type") == "runtime" and d.get("uuid"):
            self.runtimes[d["uuid"]] = {k: d.get(k) for k in ("uuid", "name", "runtime_type", "platform", "metadata", "parent", "apis")}

    def on_control(self, payload: bytes) -> None:
        try:
            msg = orjson.loads(payload)
            d = msg.get("data") or {}
        except (orjson.JSONDecodeError, AttributeError):
            return
        if msg.get("action") == "create" and d.get("type") == "module" and d.get("uuid"):
            self.modules[d["uuid"]] = {k: d.get(k) for k in ("uuid", "name", "file", "args", "parent")}

    def _known(self, kind: str, table: dict[str, dict[str, Any]], uuid: str) -> dict[str, Any]:
        if uuid not in table and self.lookup is not None:
            found = self.lookup(kind, uuid)
            if found:
                table[uuid] = found
        return table.get(uuid) or {"uuid": uuid, "name": None}

    # -- profile messages

    def on_profile(self, topic: str, payload: bytes, realm: str) -> str | None:
        """Store one message of `{realm}/proc/profile/{type}/{runtime_uuid}/{module_uuid}`; return the path."""
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
                data, error = payloads.decode(ptype, payload), None
            except payloads.PayloadError as e:
                data, error = None, str(e)
                log.error("cannot decode %s payload of module %s (%d bytes): %s; kept raw", ptype, mod_uuid, len(payload), e)
        rt = self._known("runtimes", self.runtimes, rt_uuid)
        mod = self._known("modules", self.modules, mod_uuid)
        now = time.time()
        record: dict[str, Any] = {
            "type": ptype, "topic": topic, "received": now, "runtime": rt, "module": mod,
        }
        if error is None:
            record["data"] = data
        else:
            record["error"] = error
            record["raw_base64"] = base64.b64encode(payload).decode()
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        folder = os.path.join(self.directory, day, safe_name(rt.get("name") or rt_uuid))
        base = f"{safe_name(mod.get('name') or mod_uuid)}.{safe_name(mod_uuid)}.{safe_name(ptype)}"
        with self._lock:
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, base + ".json")
            n = 1
            while os.path.exists(path):  # several messages of one type for one module: number them
                path = os.path.join(folder, f"{base}.{n}.json")
                n += 1
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(orjson.dumps(record, option=orjson.OPT_INDENT_2))
            os.replace(tmp, path)
            self.written.append(path)
        log.info("%s: %s profile of %s on %s", path, ptype, mod.get("name") or mod_uuid, rt.get("name") or rt_uuid)
        return path


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


class Collector:
    """The MQTT side: subscribes and feeds a ProfileStore (paho's network thread does the work)."""

    def __init__(self, store: ProfileStore, host: str, port: int, realm: str = "realm", *,
                 username: str | None = None, password: str | None = None) -> None:
        self.store = store
        self.realm = realm
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.host, self.port = host, port
        self.ready = threading.Event()

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            log.error("broker %s:%d refused the connection: %s", self.host, self.port, rc)
            return
        r = self.realm
        c.on_subscribe = lambda *a: self.ready.set()
        c.subscribe([(f"{r}/proc/profile/#", 2), (f"{r}/proc/reg/#", 1), (f"{r}/proc/control/#", 1)])
        log.info("collecting %s/proc/profile/# from %s:%d into %s", r, self.host, self.port, self.store.directory)

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            t = msg.topic
            if t.startswith(f"{self.realm}/proc/profile/"):
                self.store.on_profile(t, bytes(msg.payload), self.realm)
            elif t.startswith(f"{self.realm}/proc/reg/"):
                self.store.on_registration(bytes(msg.payload))
            elif t.startswith(f"{self.realm}/proc/control/"):
                self.store.on_control(bytes(msg.payload))
        except Exception:  # never let one message kill the collector
            log.exception("error storing message on %s", msg.topic)

    def start(self, timeout: float = 10.0) -> "Collector":
        self.client.connect(self.host, self.port)
        self.client.loop_start()
        if not self.ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"could not subscribe on {self.host}:{self.port} within {timeout}s")
        return self

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
