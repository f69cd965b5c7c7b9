"""Messages the broker drops on the way to the orchestrator (issue #26 item 2), for real: mosquitto
with a tiny queue (`max_queued_messages 5`) and the orchestrator SIGSTOPped, so that a burst
overflows its in-flight window (20) and queue and the broker drops the rest, counted in
`$SYS/broker/publish/messages/dropped`.
- a create that was dropped is sent again by the client library (`Client.create`) and taken;
- the orchestrator notices the drops (orchestrator/broker_drops.py): one log line, `/api/status/`."""
from __future__ import annotations

import os
import signal
import threading
from typing import Any, Iterator

import pytest

from common.wire import envelope
from silverline.client import Client
from testbed.broker import Mosquitto
from testbed.mqtt import MqttProbe
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until

R = "realm"
DROPPED = "$SYS/broker/publish/messages/dropped"


class Setup:
    def __init__(self, broker: Mosquitto, orch: OrchestratorProc, probe: MqttProbe) -> None:
        self.broker, self.orch, self.probe = broker, orch, probe

    def dropped(self) -> int:
        got = self.probe.messages(DROPPED)
        return int(got[-1].payload) if got else -1

    def stall(self) -> int:
        """SIGSTOP the orchestrator and overflow its queue at the broker; the drop count then."""
        assert self.orch.proc is not None
        before = self.dropped()
        os.kill(self.orch.proc.pid, signal.SIGSTOP)
        for i in range(40):  # deletes of modules nobody has: refused later, harmless
            self.probe.publish(f"{R}/proc/control", envelope("delete", {"uuid": f"filler-{i}"}))
        return wait_until(lambda: self.dropped() > before and self.dropped(), 20, "the broker dropped the overflow")

    def resume(self) -> None:
        assert self.orch.proc is not None
        os.kill(self.orch.proc.pid, signal.SIGCONT)


@pytest.fixture
def s(tmp_path: Any) -> Iterator[Setup]:
    with Mosquitto(extra_conf="max_queued_messages 5\nsys_interval 1") as broker:
        orch = OrchestratorProc(broker.port, str(tmp_path), ka_interval=0).start()
        probe = MqttProbe(broker.port)
        try:
            probe.subscribe(DROPPED)
            wait_until(lambda: probe.messages(DROPPED), 10, "the broker's drop counter")
            probe.publish(f"{R}/proc/reg/m-drop", envelope("create", {"type": "manager", "uuid": "m-drop", "name": "dropnode"}))
            probe.publish(f"{R}/proc/reg/rt-drop", envelope("create", {
                "type": "runtime", "uuid": "rt-drop", "name": "droprt", "runtime_type": "linux", "max_nmodules": 0,
                "apis": ["wasm", "wasi"], "platform": {}, "metadata": {}, "parent": "m-drop"}))
            wait_until(lambda: orch.get_status("/api/runtimes/rt-drop/")[1].get("status") == "A", 20, "the runtime registered")
            yield Setup(broker, orch, probe)
        finally:
            if orch.proc is not None and orch.proc.poll() is None:
                os.kill(orch.proc.pid, signal.SIGCONT)
            probe.close()
            orch.stop()


def test_a_create_the_broker_dropped_is_sent_again_and_taken(s: Setup) -> None:
    full = s.stall()

    def resume_once_the_create_was_dropped() -> None:
        try:
            wait_until(lambda: s.dropped() > full, 20, "the create dropped too")
        finally:
            s.resume()

    t = threading.Thread(target=resume_once_the_create_was_dropped, daemon=True)
    t.start()
    with Client(s.orch.config) as c:
        [m] = c.create([{"type": "module", "uuid": "mod-dropped-once", "name": "dropped", "file": "x.wasm",
                         "parent": "rt-drop"}], timeout=20, settle=0)
        t.join(30)
        assert s.dropped() > full  # the fence: the first copy really was dropped
        assert m.refused is None and m.state in ("A", "Q"), (m.state, m.refused)
        assert m._resent


def test_the_orchestrator_notices_broker_drops_and_says_so_once(s: Setup) -> None:
    """The broker's drop counter grows: one WRN line (rate-limited, not one per message) and the
    count in /api/status/."""
    full = s.stall()
    s.resume()
    wait_until(lambda: s.orch.get("/api/status/").get("broker_drops", 0) >= 1, 20, "the orchestrator counted the drops")
    status = s.orch.get("/api/status/")
    assert status["broker_drops_known"] is True
    assert status["broker_drops"] <= full  # its own count: since it connected, not more than the broker's
    log = s.orch.log()
    assert log.count("the broker dropped") == 1, log[-3000:]
    assert "max_queued_messages" in log
