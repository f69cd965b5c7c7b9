"""A node back before its old registration expired (a power cut: no stop, no last will yet) is not
left down: the orchestrator's duplicate refusal says when the holder would expire (`retry_after`),
the node asks once more then and is accepted. A live twin on the same host is refused again and
exits 4. Real orchestrator, real nodes; the old run is frozen with SIGSTOP (it neither stops nor
sends keepalives, as after a power cut)."""
from __future__ import annotations

import os
import signal
import time
import uuid as uuidlib
from typing import Any

from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until

EXIT_DUPLICATE = 4


def twin(broker: Any, manager: str) -> NodeProcess:
    # --no-state: no state-dir lock, so the second run gets as far as the orchestrator (as on a
    # device whose lock died with the power cut)
    return NodeProcess(broker.port, name="phoenix", runtimes=["test/echo"], reg_timeout=5,
                       extra_args=["--uuid", manager])


def runtime_pid(orch: OrchestratorProc, rt: str) -> Any:
    code, r = orch.get_status(f"/api/runtimes/{rt}/")
    return r.get("metadata", {}).get("pid") if code == 200 and r.get("status") == "A" else None


def registered(node: NodeProcess, orch: OrchestratorProc, probe: MqttProbe) -> str:
    """Start `node`; its runtime uuid once the orchestrator has the runtime and its first keepalive.
    A runtime that never sent a keepalive does not expire by keepalives (the original's runtimes
    send none): the cut or the twin comes after the first one, as after any real uptime."""
    probe.subscribe("realm/proc/keepalive/#")
    node.start()
    rt = node.runtime_uuid()
    wait_until(lambda: runtime_pid(orch, rt) == node.pid, 20, "the first run registered")
    probe.wait_for(f"realm/proc/keepalive/{rt}", timeout=20)
    wait_until(lambda: orch.get(f"/api/runtimes/{rt}/").get("sends_keepalives"), 20, "the orchestrator has the keepalive too")
    return rt


def test_a_node_back_after_a_power_cut_is_accepted_once_the_old_run_expired(broker: Any, orch: OrchestratorProc,
                                                                            probe: MqttProbe) -> None:
    manager = str(uuidlib.uuid4())
    old, new = twin(broker, manager), twin(broker, manager)
    try:
        rt = registered(old, orch, probe)
        os.kill(old.pid, signal.SIGSTOP)  # the power cut: silent, its MQTT session still open
        new.start(wait=False)
        wait_until(lambda: "asking again in" in new.output(), 20, "the comeback waits for the old registration")
        wait_until(lambda: runtime_pid(orch, rt) == new.pid, 30, "the comeback registered")
        assert new.proc is not None and new.proc.poll() is None, new.output()[-2000:]
        assert "refused by the orchestrator as a duplicate" not in new.output()
        # the old run wakes up and stops: its delete names its own process, not the registered one,
        # so it cannot take the comeback down
        os.kill(old.pid, signal.SIGCONT)
        assert old.stop() is not None
        assert runtime_pid(orch, rt) == new.pid
    finally:
        if old.proc is not None and old.proc.poll() is None:
            os.kill(old.pid, signal.SIGCONT)
        old.stop()
        new.stop()


def test_a_live_twin_on_the_same_host_is_refused_after_one_wait(broker: Any, orch: OrchestratorProc,
                                                                probe: MqttProbe) -> None:
    manager = str(uuidlib.uuid4())
    real, dup = twin(broker, manager), twin(broker, manager)
    try:
        rt = registered(real, orch, probe)
        dup.start(wait=False)
        assert dup.wait_exit(30) == EXIT_DUPLICATE, dup.output()[-2000:]
        out = dup.output()
        assert "asking again in" in out and "refused by the orchestrator as a duplicate" in out, out[-2000:]
        assert runtime_pid(orch, rt) == real.pid  # the real node was never taken down
    finally:
        dup.stop()
        real.stop()
