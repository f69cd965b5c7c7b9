"""Fakes behind the supervisor's seams, for unit tests of its logic: `FakeOps` for the process
syscalls (process.py), `FakeLink` for the MQTT link the outbox publishes to. Everything else
in these tests is real (real POSIX queues and shared-memory rings, the real state machine)."""
from __future__ import annotations

from typing import Any

import orjson

from common.wire import Topics
from ipc import NodeIPC, WorkerEndpoint
from runtimes import RuntimeSpec
from runtimes.base import WorkerConfig
from runtimes.testing import EchoRuntime
from supervisor.modules import ModuleControl
from supervisor.outbox import Outbox
from supervisor.process import Launch
from supervisor.router import Router
from supervisor.workers import RestartPolicy, Worker

REALM = "realm"


class FakeOps:
    """Records what the machine asks for; hands out pids 1000, 1001, ..."""

    def __init__(self) -> None:
        self.spawned: list[Launch] = []
        self.kills: list[tuple[int, int]] = []
        self.next_pid = 1000
        self.fail_spawn = False

    def spawn(self, launch: Launch) -> int:
        if self.fail_spawn:
            raise OSError("fork: resource temporarily unavailable")
        self.spawned.append(launch)
        self.next_pid += 1
        return self.next_pid - 1

    def kill(self, pid: int, sig: int) -> None:
        self.kills.append((pid, sig))

    def wait_any(self, block: bool) -> tuple[int, int] | None:
        return None

    def allowed_cpus(self) -> list[int]:
        return [0]


class FakeLink:
    """What the outbox sends to MQTT."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, int]] = []
        self.subscriptions: dict[str, int] = {}

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.published.append((topic, bytes(payload), qos))

    def subscribe(self, topic: str, qos: int = 0) -> None:
        self.subscriptions[topic] = qos

    def unsubscribe(self, topic: str) -> None:
        self.subscriptions.pop(topic, None)

    def on(self, topic: str) -> list[Any]:
        return [orjson.loads(p) if p[:1] in (b"{", b"[") else p for t, p, _ in self.published if t == topic]


def launch(name: str) -> Launch:
    return Launch(name, WorkerConfig(sid="s", slot=0, backend="posix", runtime="test/echo", name=name, uuid="u"), None, None, [])


def make_worker(slot: int, ops: FakeOps, **policy: Any) -> Worker:
    spec = RuntimeSpec("test/echo", "runtimes.testing:EchoRuntime")
    return Worker(slot, spec, EchoRuntime, f"n.echo{slot}", f"rt-{slot}", None, {}, ops, RestartPolicy(**policy))


class Rig:
    """Workers whose rings are real (a NodeIPC in this process, its WorkerEndpoints attached here
    instead of in forked workers) behind a real Router and ModuleControl."""

    def __init__(self, n: int = 2, *, access_control: bool = True) -> None:
        self.ops = FakeOps()
        self.node_ipc = NodeIPC(ring_capacity=1 << 16)
        self.workers = [make_worker(i, self.ops) for i in range(n)]
        self.link = FakeLink()
        self.outbox = Outbox(Topics(REALM), node_name="n", manager_uuid="mgr")
        self.outbox.link = self.link  # type: ignore[assignment]
        self.reports: list[tuple[str, bytes]] = []  # RT_REGISTER payloads the router handed over, by worker name
        self.router = Router(self.workers, self.outbox, realm=REALM, access_control=access_control, heartbeat=False,
                             on_exited=lambda w, i, p: self.modules.exited(w, i, p),
                             on_register=lambda w, i, p: self.reports.append((w.name, bytes(p))))
        self.modules = ModuleControl(self.outbox, self.router)
        self.ends: list[WorkerEndpoint] = []
        for w in self.workers:
            w.ep = self.node_ipc.add_worker(w.slot)
            w.start(launch(w.name), 0.0)
            w.booted = True
            w.tick(10.0)  # RUNNING
            self.ends.append(WorkerEndpoint.attach(self.node_ipc.sid, w.slot, "posix"))

    def close(self) -> None:
        for e in self.ends:
            e.close()
        self.node_ipc.close()

    def from_worker(self, slot: int, h1: int, h2: int, payload: bytes = b"") -> None:
        """The worker in `slot` sends; the supervisor drains it (what the loop does on a doorbell)."""
        self.ends[slot].send(h1, h2, payload)
        self.router.drain(self.workers[slot])

    def to_worker(self, slot: int) -> list[tuple[int, int, bytes]]:
        return [(m.h1, m.h2, bytes(m.payload)) for m in self.ends[slot].drain()]

    def control(self, slot: int, msg: dict[str, Any]) -> None:
        w = self.workers[slot]
        self.modules.control(w, f"{REALM}/proc/control/{w.uuid}", orjson.dumps(msg))

    def errors(self) -> list[str]:
        return [m["data"]["error"] for m in self.link.on(f"{REALM}/proc/log")]

