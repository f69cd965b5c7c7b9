"""A broker restart with the fleet settings (common/broker.py: persistence): the orchestrator's
persistent session outlives it, so what nodes send before the orchestrator is back waits for it.

Regression (issue #26 item 2, found in the chaos fleet scenario): a node that stopped cleanly after
a broker restart, before the orchestrator had re-subscribed, lost its goodbye deletes; its runtimes
stayed alive until keepalive expiry and the node restarted at once was refused as a duplicate (exit 4).
"""
from __future__ import annotations

import os
import signal
from typing import Any

from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until


def alive(orch: OrchestratorProc, rt: str) -> bool:
    return orch.get_status(f"/api/runtimes/{rt}/")[1].get("status") == "A"


def test_a_goodbye_sent_while_the_orchestrator_is_away_after_a_broker_restart_reaches_it(tmp_path: Any) -> None:
    state = str(tmp_path / "state")
    with Mosquitto(fleet=True, persistent=True) as broker:
        # keepalive expiry (3 x 20 s) cannot mark the runtimes dead within the test's waits: only the goodbye can
        orch = OrchestratorProc(broker.port, str(tmp_path), ka_interval=20.0).start()
        n = NodeProcess(broker.port, name="bye", runtimes=["test/echo"], state_dir=state, reg_timeout=5)
        try:
            n.start()
            rt = n.runtime_uuid()
            wait_until(lambda: alive(orch, rt), 20, "the node registered")
            assert orch.proc is not None
            os.kill(orch.proc.pid, signal.SIGSTOP)  # the orchestrator is away while the broker restarts ...
            try:
                broker.stop()
                broker.start()
                # ... and the node is back on the broker first: its new connection is the fence
                wait_until(lambda: n.output().count("connected to MQTT broker") >= 2, 20, "the node reconnected")
                assert n.stop() == 0  # the goodbye: deletes of its runtimes and manager, QoS 1
            finally:
                os.kill(orch.proc.pid, signal.SIGCONT)
            wait_until(lambda: not alive(orch, rt), 30, "the orchestrator got the goodbye sent while it was away")
            again = NodeProcess(broker.port, name="bye", runtimes=["test/echo"], state_dir=state, reg_timeout=5)
            try:
                again.start()
                wait_until(lambda: alive(orch, rt), 20, "the node restarted at once is registered again")
                assert again.proc is not None and again.proc.poll() is None, again.output()[-2000:]
            finally:
                assert again.stop() == 0, again.output()[-2000:]
        finally:
            n.stop()
            orch.stop()
