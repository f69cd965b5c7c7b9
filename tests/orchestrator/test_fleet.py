"""Issue #26 item 1 with a real mosquitto and a real orchestrator process: a simulated fleet
(testbed/fleet.py: the real registration and keepalive messages, many runtimes per connection)
keeps its runtimes alive while several clients hammer the REST list and the dashboard; a runtime
that really went silent dies, is asked once to register when it talks again, and is back within a
keepalive interval. `SL_FLEET_NODES` sets the fleet size (default 1,000 nodes x 2 runtimes)."""
from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request

import pytest

from testbed.broker import Mosquitto
from testbed.fleet import SimFleet
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until

pytestmark = pytest.mark.orchestrator(ka_interval=1.0)

NODES = int(os.environ.get("SL_FLEET_NODES", "1000"))
HAMMERS = 4


def _status(orch: OrchestratorProc, uuid: str) -> str:
    return str(orch.get(f"/api/runtimes/{uuid}/")["status"])


def test_hammered_rest_lists_kill_no_runtime(broker: Mosquitto, orch: OrchestratorProc) -> None:
    """Regression (issue #26): full lists were built under the decision lock; at 10k runtimes 9,126
    live runtimes were declared dead 16 s into 200 back-to-back lists."""
    with SimFleet(broker.port, nodes=NODES) as fleet:
        fleet.start()
        n = len(fleet.runtimes)
        wait_until(lambda: orch.get("/api/runtimes/?count=0")["count"] == n, 60, f"{n} runtimes alive")
        stop = threading.Event()
        lists = [0] * HAMMERS
        errors: list[BaseException] = []

        def hammer(i: int) -> None:
            paths = ["/api/runtimes/?count=100000", "/api/dashboard/", "/api/runtimes/?start=500&count=100"]
            try:
                while not stop.is_set():
                    with urllib.request.urlopen(orch.url + paths[lists[i] % len(paths)], timeout=30) as r:
                        r.read()
                    lists[i] += 1
            except BaseException as e:  # the assertion below names it
                errors.append(e)

        threads = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(HAMMERS)]
        for t in threads:
            t.start()
        sent0 = fleet.sent_keepalives
        # at least 8 keepalive intervals of hammering (3 are a death), and every runtime kept talking
        wait_until(lambda: fleet.sent_keepalives - sent0 >= 8 * n, 120, "8 keepalive rounds under the hammer")
        stop.set()
        for t in threads:
            t.join(30)
        assert not errors, f"a REST client failed: {errors[0]!r}"
        # a fence: every keepalive sent so far was handled once the next round's replies are in
        status = orch.get("/api/status/")
        dead = orch.get("/api/runtimes/?status=D&count=100000")
        assert dead["count"] == 0, (f"{dead['count']} live runtimes declared dead under {sum(lists)} REST reads, e.g."
                                    f" {[r['name'] for r in dead['results'][:5]]}; status {status}\n{orch.log()[-3000:]}")
        assert "missed 3 keepalives" not in orch.log()
        assert sum(lists) >= 4 * HAMMERS, f"the clients read only {lists} times: no hammer"
        assert orch.get("/api/runtimes/?count=0")["count"] == n


def test_a_silent_runtime_dies_is_asked_once_when_it_talks_and_comes_back(broker: Mosquitto, orch: OrchestratorProc) -> None:
    with SimFleet(broker.port, nodes=20) as fleet:
        fleet.start()
        deaf, quick = list(fleet.runtimes)[:2]
        for u in (deaf, quick):  # a runtime that never sent a keepalive is never expired (the original's)
            wait_until(lambda: orch.get(f"/api/runtimes/{u}/")["sends_keepalives"], 10, f"a keepalive of {u}")
        # 1. silent for real: dead (by the fence rule: not before 3 intervals of silence)
        fleet.deaf.add(deaf)
        fleet.mute(deaf)
        fleet.mute(quick)
        wait_until(lambda: _status(orch, deaf) == "D" and _status(orch, quick) == "D", 15, "both silent runtimes dead")
        assert _status(orch, list(fleet.runtimes)[2]) == "A"
        # 2. the deaf one talks again without registering: one register request, however many keepalives
        q0 = orch.get("/api/status/")["quiet_refusals"]
        fleet.unmute(deaf)
        wait_until(lambda: orch.get("/api/status/")["quiet_refusals"] >= q0 + 3, 15, "3 more keepalives refused quietly")
        fleet.deaf.discard(deaf)
        ok_before = fleet.ok[deaf]
        fleet._register(deaf)  # it registers on its own; its ok reply comes after any request sent before it
        wait_until(lambda: fleet.ok[deaf] > ok_before, 10, "the deaf runtime registered again")
        assert fleet.register_requests.get(deaf) == 1
        assert _status(orch, deaf) == "A"
        # 3. the other one hears the request: back within one keepalive interval of talking again
        t0 = time.monotonic()
        fleet.unmute(quick)
        wait_until(lambda: fleet.ok[quick] > t0, 10, "the silent runtime registered again")
        assert fleet.ok[quick] - t0 <= fleet.ka_interval + 1.0  # the first keepalive comes within one interval
        assert fleet.register_requests.get(quick) == 1
        assert _status(orch, quick) == "A"
        # the refusal was reported once per runtime on proc/log (not at every keepalive): see the log
        refused = orch.log().count("it must register again")
        assert refused == 2, f"{refused} refusals logged for two dead runtimes"


def test_last_wills_and_requests_go_ahead_of_waiting_keepalives_which_are_not_starved() -> None:
    """The decision thread's inbound queue (service.py `Inbound`): a last will that arrives behind
    thousands of keepalives is handled first; keepalives and fences keep their order; a flood of
    requests still lets SHARE keepalives through per batch."""
    from orchestrator.service import BATCH, SHARE, Inbound

    q = Inbound()
    for i in range(3000):
        q.put(f"realm/proc/keepalive/rt-{i}", b"{}", float(i), second=True)
    q.put("realm/proc/orchestrator/x/fence", b"3000.0", 3000.0, second=True)
    q.put("realm/proc/reg/m-1", b'{"action": "delete", "data": {"last_will": true}}', 3001.0, second=False)
    first = q.take(0)
    assert first[0][0] == "realm/proc/reg/m-1" and len(first) == BATCH
    got = first[1:]
    while len(q):
        got += q.take(0)
    assert [t for t, _, _ in got][-1] == "realm/proc/orchestrator/x/fence"  # behind every keepalive before it
    assert [a for _, _, a in got[:-1]] == [float(i) for i in range(3000)]
    for i in range(1000):
        q.put("realm/proc/control", b"{}", float(i), second=False)
    for i in range(100):
        q.put(f"realm/proc/keepalive/rt-{i}", b"{}", float(i), second=True)
    batch = q.take(0)
    assert sum("/keepalive/" in t for t, _, _ in batch) == SHARE


def test_a_paused_orchestrator_kills_nobody_when_it_resumes(broker: Mosquitto, orch: OrchestratorProc) -> None:
    """SIGSTOP the orchestrator for 5 keepalive intervals while the fleet keeps talking: when it
    resumes, only the runtime that really went silent dies (the code before expired every runtime at
    the first tick after the pause: their keepalives waited in the broker and the socket)."""
    with SimFleet(broker.port, nodes=20) as fleet:
        fleet.start()
        n = len(fleet.runtimes)
        canary = list(fleet.runtimes)[0]
        wait_until(lambda: all(r["sends_keepalives"] for r in orch.get("/api/runtimes/?count=1000")["results"]), 15,
                   "every runtime sent a keepalive")
        assert orch.proc is not None
        fleet.mute(canary)
        orch.proc.send_signal(signal.SIGSTOP)
        try:
            sent = fleet.sent_keepalives
            wait_until(lambda: fleet.sent_keepalives - sent >= 5 * (n - 1), 30, "5 keepalive rounds while paused")
        finally:
            orch.proc.send_signal(signal.SIGCONT)
        # the canary's death is the fence: it is declared by the same check that would find the others dead
        wait_until(lambda: _status(orch, canary) == "D", 20, "the silent runtime dead")
        dead = orch.get("/api/runtimes/?status=D&count=1000")["results"]
        assert [r["uuid"] for r in dead] == [canary], f"{len(dead)} dead after the pause:\n{orch.log()[-2000:]}"
