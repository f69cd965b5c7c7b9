"""Scenario 2: stop mosquitto mid-run, restart it, measure the node's way back.

A node with two `test/echo` runtimes (`keep` and `lose`) registered at the real orchestrator.
`keep` runs echo modules whose channels carry traffic; `lose` runs K plain modules. While the
broker is down, the `lose` worker is SIGKILLed: its K `exited` (QoS 1) messages are produced while
the node has no broker and must all arrive after the reconnect. A watcher with a persistent
session (the broker persists sessions across its restart) sees everything the node publishes,
also what arrives before the watcher itself is back, so nothing is missed by the measurement and
the reconnect time is an upper bound (from the moment the broker listens again to the moment the
node's registration is seen). After the reconnect: creates sent to the node (QoS 1) must all start
(answered by the module), `keep`'s modules must still echo on the same worker process.
"""
from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid as _uuid

from chaos.base import REALM, Inbox, Outcome, Size, Watch, js, module_create, module_delete, wait_until, workers_by_name
from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc

LOSE_MODULES = 5
OUTAGES_S = [1.5, 9.0, 20.0]  # broker down this long; the later ones outlast several reconnect attempts


def persistent_broker(dirpath: str) -> Mosquitto:
    b = Mosquitto()
    with open(b.conf) as f:
        conf = f.read()
    conf = conf.replace("persistence false", f"persistence true\npersistence_location {dirpath}/\nautosave_interval 1")
    with open(b.conf, "w") as f:
        f.write(conf)
    return b


def run(size: Size, outages: list[float] | None = None) -> Outcome:
    out = Outcome("broker_loss")
    durations = outages or OUTAGES_S[:size.broker_outages]
    tmp = tempfile.mkdtemp(prefix="sl-chaos-bl-")
    broker = persistent_broker(tmp).start()
    inbox = Inbox()
    watch = orch = node = None
    reregister: list[float] = []
    lost = sent_total = 0
    try:
        orch = OrchestratorProc(broker.port, tmp, ka_interval=1.0).start()
        watch = Watch(broker.port, inbox, [(f"{REALM}/proc/#", 2), ("bl/+/out", 1)], client_id="chaos-bl-watch", persistent=True)
        node = NodeProcess(broker.port, name="bl", runtimes=["test/echo", "test/echo"], reg_timeout=5, backoff=0.2,
                           state_dir=os.path.join(tmp, "state"))
        node.start(timeout=60)
        keep_name, lose_name = sorted(node.runtime_uuids)
        keep, lose = node.runtime_uuids[keep_name], node.runtime_uuids[lose_name]
        for i in range(2):
            watch.publish(f"{REALM}/proc/control/{keep}", module_create(
                f"bl-keep-{i}", keep, channels=[{"path": "in", "mode": "r", "topic": f"bl/{i}/in"},
                                                {"path": "out", "mode": "w", "topic": f"bl/{i}/out"}])).wait_for_publish(5)
        for i in range(2):
            wait_until(lambda: f"opened channel 1 on bl/{i}/out" in node.output(), 20, f"keep module {i} open")
        keep_pid = workers_by_name(node.pid)[keep_name]

        def echo_round(tag: str) -> bool:
            mark = len(inbox)
            for i in range(2):
                watch.publish(f"bl/{i}/in", f"{tag}-{i}".encode(), qos=1)
            try:
                inbox.wait(lambda t, p: t.startswith("bl/") and p.startswith(tag.encode()), 20, count=2, since=mark)
                return True
            except TimeoutError:
                return False

        out.check(echo_round("before"), "echo modules did not answer before the outage")
        for outage in range(len(durations)):
            doomed = [str(_uuid.uuid4()) for _ in range(LOSE_MODULES)]
            for u in doomed:
                watch.publish(f"{REALM}/proc/control/{lose}", module_create(u, lose)).wait_for_publish(5)
            wait_until(lambda: all(f"({u})" in node.output() or u in node.output() for u in doomed), 20, "doomed modules created")
            time.sleep(0.3)
            mark = len(inbox)
            broker.stop()
            time.sleep(0.3)
            os.kill(workers_by_name(node.pid)[lose_name], signal.SIGKILL)  # exited messages while offline
            time.sleep(max(0.0, durations[outage] - 0.3))
            broker.start()
            t_up = time.monotonic()
            try:
                hits = inbox.wait(lambda t, p: t == f"{REALM}/proc/reg/{node.manager_uuid}" and js(p).get("action") == "create"
                                  and js(p).get("type") == "req", 30, since=mark)
                reregister.append(max(0.0, hits[0][0] - t_up))
            except TimeoutError:
                out.fail(f"outage {outage + 1}: the node did not register again within 30 s")
                reregister.append(float("inf"))
            # the K exited messages produced while offline (QoS 1)
            try:
                inbox.wait(lambda t, p: t == f"{REALM}/proc/control/{lose}" and js(p).get("action") == "exited"
                           and js(p)["data"].get("uuid") in doomed, 20, count=LOSE_MODULES, since=mark)
            except TimeoutError:
                got = {js(p)["data"]["uuid"] for _, t, p in inbox.find(lambda t, p: js(p).get("action") == "exited", mark)}
                miss = [u for u in doomed if u not in got]
                lost += len(miss)
                out.fail(f"outage {outage + 1}: {len(miss)} exited messages produced offline never arrived")
            sent_total += LOSE_MODULES
            wait_until(lambda: node.output().count("registration done") >= outage + 2, 30, "registration round after reconnect")
            # creates after the way back (QoS 1): every one must run and be deletable
            fresh = [str(_uuid.uuid4()) for _ in range(LOSE_MODULES)]
            mark2 = len(inbox)
            wait_until(lambda: lose_name in workers_by_name(node.pid), 20, "lose worker back")
            for u in fresh:
                watch.publish(f"{REALM}/proc/control/{lose}", module_create(u, lose), qos=1)
            for u in fresh:
                watch.publish(f"{REALM}/proc/control/{lose}", module_delete(u), qos=1)
            sent_total += 2 * LOSE_MODULES
            try:
                inbox.wait(lambda t, p: js(p).get("action") == "exited" and js(p)["data"].get("uuid") in fresh
                           and js(p)["data"]["status"]["reason"] == "deleted", 20, count=LOSE_MODULES, since=mark2)
            except TimeoutError:
                got = {js(p)["data"]["uuid"] for _, t, p in inbox.find(lambda t, p: js(p).get("action") == "exited", mark2)}
                miss = [u for u in fresh if u not in got]
                lost += len(miss)
                out.fail(f"outage {outage + 1}: {len(miss)} of {len(fresh)} create/delete pairs sent after the reconnect had no effect")
            out.check(echo_round(f"after{outage}"), f"outage {outage + 1}: echo modules stopped answering")
        kept = workers_by_name(node.pid).get(keep_name) == keep_pid
        out.check(kept, "the keep runtime's worker was restarted (modules did not keep running)")
        rt_state = orch.get(f"/api/runtimes/{keep}/")["status"]
        out.check(rt_state == "A", f"the orchestrator shows the runtime {rt_state!r} after the outages, want 'A'")
        worst = max(reregister) if reregister else None
        out.figures.update({
            "broker_outages": len(durations), "outage_s": durations, "broker_reregister_s": round(worst, 2) if worst is not None else None,
            "broker_reregister_s_all": [round(x, 2) for x in reregister],
            "control_sent": sent_total, "control_lost": lost, "modules_kept_running": kept,
            "orchestrator_sees_runtime": rt_state,
        })
        out.check(worst is not None and worst <= 5.0, f"re-registration took {worst} s (> 5 s)")
    finally:
        for closer in (node.stop if node else None, watch.close if watch else None, orch.stop if orch else None, broker.close):
            if closer:
                try:
                    closer()
                except Exception:
                    pass
    return out
