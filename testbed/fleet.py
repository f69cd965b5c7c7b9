"""A simulated fleet for tests and bench/fleet.py: many nodes x runtimes speaking the real
registration and keepalive messages (supervisor/registration.py's, docs/orchestrator.md) to a
real broker, over a few MQTT connections instead of one per node (a real node costs ~57 MB;
the orchestrator cannot tell the difference: it keys everything by uuid and topic).

Each simulated runtime registers (after its manager), sends a keepalive every `ka_interval_sec`
of its registration reply (phases spread evenly), and registers again when the orchestrator asks
(`details.register`), as a real node does. `mute(uuid)` stops its keepalives (a runtime that
really died), `unmute` resumes them; `register_requests[uuid]` counts the requests it got.
"""
from __future__ import annotations

import heapq
import itertools
import os
import random
import threading
import time
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from supervisor.registrar import BACKOFF_FIRST, BACKOFF_MAX, JITTER


def _envelope(action: str, data: dict[str, Any], oid: str) -> bytes:
    return orjson.dumps({"object_id": oid, "action": action, "type": "req", "data": data})


class SimFleet:
    """`nodes` managers with `per_node` runtimes each; `start()` registers them all and starts keepalives."""

    def __init__(self, port: int, *, nodes: int, per_node: int = 2, realm: str = "realm", clients: int = 4,
                 prefix: str = "sim", apis: tuple[list[str], ...] = (["wasm", "wasi"], ["wasm", "wasi", "benchmarking"]),
                 max_nmodules: int = 4, host: str = "127.0.0.1") -> None:
        self.realm = realm
        self.managers = [f"{prefix}-m-{i:06d}-0000-4000-8000-000000000000" for i in range(nodes)]
        self.runtimes: dict[str, dict[str, Any]] = {}  # uuid -> registration data
        for i, m in enumerate(self.managers):
            for k in range(per_node):
                uuid = f"{prefix}-r-{i:06d}-{k:04d}-4000-8000-000000000000"
                self.runtimes[uuid] = {"type": "runtime", "uuid": uuid, "name": f"{prefix}{i}.{k}", "runtime_type": "sim",
                                       "max_nmodules": max_nmodules, "apis": apis[k % len(apis)], "platform": {},
                                       "metadata": {"host": "simfleet", "pid": 100000 + i}, "parent": m}
        self.lock = threading.Lock()
        self.ok: dict[str, float] = {}  # uuid -> time of its last ok reply
        self.ka: list[tuple[float, str]] = []  # heap of (next keepalive due, uuid)
        self._started: set[str] = set()
        self.ka_interval = 0.0
        self.muted: set[str] = set()
        self.deaf: set[str] = set()  # ignore register requests (a node that does not hear them)
        self.register_requests: dict[str, int] = {}
        self.sent_keepalives = 0
        self.registrations = 0
        self._pending: dict[str, float] = {}  # uuid -> when its registration is due again (not answered)
        self._delay: dict[str, float] = {}  # uuid -> its next backoff delay (the node's: supervisor/registrar.py)
        self.resends = 0  # registrations sent again because no answer came in time
        self._rng = random.Random(26)
        self._oid = itertools.count()
        self._stop = threading.Event()
        self._pubs = [self._client(host, port, f"{prefix}-pub{i}-{os.getpid()}") for i in range(clients)]
        self._rr = itertools.cycle(self._pubs)
        self._listener = self._client(host, port, f"{prefix}-sub-{os.getpid()}")
        self._listener.on_message = self._on_message
        self._listener.subscribe(f"{realm}/proc/reg/+", qos=1)
        self._thread: threading.Thread | None = None

    @staticmethod
    def _client(host: str, port: int, cid: str) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
        c.max_queued_messages_set(0)
        c.max_inflight_messages_set(1000)
        c.connect(host, port, keepalive=60)
        c.loop_start()
        return c

    # -- messages --------------------------------------------------------------------------
    def _publish(self, topic: str, payload: bytes, qos: int) -> None:
        next(self._rr).publish(topic, payload, qos=qos)

    def _register(self, uuid: str) -> None:
        data = self.runtimes.get(uuid)
        if data is None:
            i = self.managers.index(uuid)
            data = {"type": "manager", "uuid": uuid, "name": f"simnode{i}", "metadata": {"host": "simfleet", "pid": 100000 + i}}
        with self.lock:
            d = self._delay.get(uuid, BACKOFF_FIRST)
            self._pending[uuid] = time.monotonic() + d * (1 - JITTER + 2 * JITTER * self._rng.random())
            self._delay[uuid] = min(BACKOFF_MAX, d * 2)
            self.registrations += 1
        self._publish(f"{self.realm}/proc/reg/{uuid}", _envelope("create", data, f"sim-{next(self._oid)}"), 1)

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            m = orjson.loads(msg.payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(m, dict) or m.get("type") != "resp" or m.get("action") != "create":
            return
        uuid = msg.topic.rsplit("/", 1)[1]
        data = m.get("data") or {}
        details = data.get("details") or {}
        now = time.monotonic()
        if data.get("result") == "ok":
            ka = details.get("ka_interval_sec")
            with self.lock:
                self._pending.pop(uuid, None)
                self._delay.pop(uuid, None)
                self.ok[uuid] = now
                if isinstance(ka, (int, float)) and ka > 0 and uuid in self.runtimes:
                    self.ka_interval = float(ka)
                    if uuid not in self._started:  # first registration: spread the phases evenly
                        self._started.add(uuid)
                        heapq.heappush(self.ka, (now + (hash(uuid) % 1000) / 1000 * float(ka), uuid))
        elif details.get("register") is True:
            with self.lock:
                self.register_requests[uuid] = self.register_requests.get(uuid, 0) + 1
                deaf = uuid in self.deaf
            if not deaf:
                self._register(uuid)

    # -- life ------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0, chunk: int = 500) -> float:
        """Register every manager, then every runtime (in chunks, re-sending unanswered ones as a node
        does: after 1 s doubling to 3 s, x 0.75-1.25); start the keepalives; returns the seconds it took."""
        t0 = time.monotonic()
        for group in (self.managers, list(self.runtimes)):
            for i in range(0, len(group), chunk):
                for uuid in group[i:i + chunk]:
                    self._register(uuid)
                self._wait_answered(group[:i + chunk], t0 + timeout)
        self._thread = threading.Thread(target=self._keepalives, name="simfleet-ka", daemon=True)
        self._thread.start()
        return time.monotonic() - t0

    def _wait_answered(self, uuids: list[str], deadline: float) -> None:
        while True:
            with self.lock:
                missing = [u for u in uuids if u not in self.ok]
                now = time.monotonic()
                stale = [u for u in missing if now >= self._pending.get(u, 0.0)]
                self.resends += len(stale)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(missing)} of {len(uuids)} registrations unanswered (e.g. {missing[0]})")
            for u in stale:
                self._register(u)
            time.sleep(0.02)

    def _keepalives(self) -> None:
        while not self._stop.wait(0.01):
            now = time.monotonic()
            due = []
            with self.lock:
                while self.ka and self.ka[0][0] <= now:
                    t, u = self.ka[0]
                    heapq.heapreplace(self.ka, (max(t + self.ka_interval, now + self.ka_interval / 2), u))
                    if u not in self.muted:
                        due.append(u)
            for u in due:
                rt = self.runtimes[u]
                body = {"type": "runtime", "uuid": u, "name": rt["name"], "apis": rt["apis"], "children": []}
                self._publish(f"{self.realm}/proc/keepalive/{u}", _envelope("update", body, "ka"), 0)
            self.sent_keepalives += len(due)

    def mute(self, uuid: str) -> None:
        with self.lock:
            self.muted.add(uuid)

    def unmute(self, uuid: str) -> None:
        with self.lock:
            self.muted.discard(uuid)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for c in [*self._pubs, self._listener]:
            c.loop_stop()
            c.disconnect()

    def __enter__(self) -> "SimFleet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
