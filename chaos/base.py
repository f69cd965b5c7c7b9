"""What every scenario shares: sizes, outcomes, and small probes of processes and IPC objects."""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `python chaos/...` as well as `python -m chaos`
    sys.path.insert(0, ROOT)

from testbed.control import control_message, js as js  # noqa: E402  (js: for the scenarios; after the path: also `python chaos/x.py`)
from testbed.control import module_create as _module_create  # noqa: E402
from testbed.control import module_delete as _module_delete  # noqa: E402
from testbed.wait import wait_until as _wait_until  # noqa: E402

REALM = "realm"
IPC_DIRS = ("/dev/mqueue", "/dev/shm")


@dataclass(frozen=True)
class Size:
    """How hard a run pushes: `full` is the issue's claim, `quick` ~2 minutes, `test` for pytest."""
    name: str
    worker_kills: int
    fuzz_cases: int          # per bad-input target that goes through a live process
    fuzz_inproc: int         # per in-process target (codecs, rings)
    broker_outages: int
    sandbox_repeats: int


SIZES: dict[str, Size] = {
    "full": Size("full", worker_kills=100, fuzz_cases=10_000, fuzz_inproc=10_000, broker_outages=3, sandbox_repeats=3),
    "quick": Size("quick", worker_kills=30, fuzz_cases=2_000, fuzz_inproc=3_000, broker_outages=1, sandbox_repeats=1),
    "test": Size("test", worker_kills=6, fuzz_cases=300, fuzz_inproc=2_000, broker_outages=1, sandbox_repeats=1),
}


@dataclass
class Outcome:
    """What one scenario measured (`figures`) and which promises it saw broken (`failures`)."""
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def fail(self, text: str) -> None:
        self.failures.append(text)

    def check(self, ok: bool, text: str) -> bool:
        if not ok:
            self.fail(text)
        return ok


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """testbed.wait.wait_until polling more often: the scenarios time recoveries with it."""
    return _wait_until(pred, timeout, what, interval)


def ipc_objects(sid: int | None = None) -> list[str]:
    """Our IPC objects (`sl.*`) in /dev/mqueue and /dev/shm; only supervisor `sid`'s when given."""
    prefix = "sl." if sid is None else f"sl.{sid}."
    out: list[str] = []
    for d in IPC_DIRS:
        try:
            out += [f"{d}/{n}" for n in os.listdir(d) if n.startswith(prefix)]
        except FileNotFoundError:
            pass
    return sorted(out)


def rss_kb(pid: int) -> int:
    """Resident set size of `pid` in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def title(pid: int) -> str:
    """The process title (`silverline: rt.NAME` for a worker)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def workers_by_name(supervisor_pid: int) -> dict[str, int]:
    """{runtime name: worker pid} of a live supervisor, from the workers' titles."""
    out: dict[str, int] = {}
    for pid in children(supervisor_pid):
        t = title(pid)
        if t.startswith("silverline: rt.") and alive(pid):
            out[t.split("rt.", 1)[1].split()[0]] = pid
    return out


class Watch:
    """An MQTT client that hands every message to `on_message(topic, payload)` on paho's thread.

    `persistent=True` keeps the session (and its queued QoS>=1 messages) across a broker restart
    when the broker persists: what a node publishes while this client is away is not missed.
    """

    def __init__(self, port: int, on_message: Callable[[str, bytes], None], topics: list[tuple[str, int]],
                 *, client_id: str = "", persistent: bool = False, host: str = "127.0.0.1",
                 tls: dict[str, Any] | None = None, auth: tuple[str, str] | None = None) -> None:
        self.topics = topics
        self._on = on_message
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if tls:
            self.client.tls_set(**tls)
        if auth:
            self.client.username_pw_set(*auth)
        self.client.on_message = lambda c, u, m: self._on(m.topic, bytes(m.payload))
        self.client.on_connect = self._connected
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        # paho annotates the delays as int, yet sleeps any number: the scenarios time recoveries, so 50-200 ms
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        props = None
        if persistent:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: no annotations
            props.SessionExpiryInterval = 3600
        self.client.connect(host, port, clean_start=not persistent, properties=props)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            self.close()
            raise TimeoutError(f"MQTT client could not subscribe on port {port}")

    def _connected(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if not getattr(flags, "session_present", False):
            self.subscribed.clear()
            client.subscribe([(t, q) for t, q in self.topics])
        else:
            self.subscribed.set()

    def publish(self, topic: str, payload: Any, qos: int = 1) -> mqtt.MQTTMessageInfo:
        if not isinstance(payload, (bytes, bytearray, str)):
            payload = orjson.dumps(payload)
        return self.client.publish(topic, payload, qos=qos)

    def close(self) -> None:
        self.client.loop_stop()
        try:
            self.client.disconnect()
        except Exception:
            pass


class Inbox:
    """Thread-safe message log with counters per predicate, for Watch callbacks."""

    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.msgs: list[tuple[float, str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        with self.cv:
            self.msgs.append((time.monotonic(), topic, payload))
            self.cv.notify_all()

    def find(self, pred: Callable[[str, bytes], bool], since: int = 0) -> list[tuple[float, str, bytes]]:
        with self.cv:
            return [m for m in self.msgs[since:] if pred(m[1], m[2])]

    def wait(self, pred: Callable[[str, bytes], bool], timeout: float, count: int = 1, since: int = 0) -> list[tuple[float, str, bytes]]:
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                hits = [m for m in self.msgs[since:] if pred(m[1], m[2])]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(hits)}/{count} expected messages after {timeout:g}s")
                self.cv.wait(left)

    def __len__(self) -> int:
        with self.cv:
            return len(self.msgs)


def control(action: str, data: dict[str, Any], object_id: str | None = None) -> bytes:
    """A control envelope (docs/protocol.md, "Envelope")."""
    return orjson.dumps(control_message(action, data, object_id))


def module_create(uuid: str, parent: str, *, channels: list[dict[str, str]] | None = None, name: str | None = None,
                  file: str = "none", **args: Any) -> bytes:
    return orjson.dumps(_module_create(uuid, parent, channels=channels, name=name or f"mod-{uuid[:8]}", file=file, **args))


def module_delete(uuid: str) -> bytes:
    return orjson.dumps(_module_delete(uuid))