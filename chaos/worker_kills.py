"""Scenario 1: SIGKILL a random worker N times while modules run and channels carry traffic.

A node with three `test/echo` runtimes. Each runtime holds a `keeper` module (`fault_crash:
restart`, an echo channel in -> out) and a `victim` module (no restart policy). A publisher
thread sends QoS 0 traffic into every keeper's channel all the time. The killer picks a random
worker that has been RUNNING (up > startsecs) and SIGKILLs it, then checks:
- the supervisor started a new worker for that runtime (a restart),
- the victim was reported `exited` with `reason: crashed` (then a new victim is created),
- the keeper was re-created on the new worker (its channel opened again);
at the end: every keeper still echoes, the node's IPC objects are as many as at the start,
none remain after the node stops, and the supervisor's RSS did not grow.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid as _uuid

from chaos.base import (REALM, Inbox, Outcome, Size, Watch, alive, ipc_objects, js, module_create, rss_kb,
                        wait_until, workers_by_name)
from testbed.broker import Mosquitto
from testbed.node import NodeProcess

STARTSECS = 1.0  # the supervisor's; a worker killed before is a failed start (and 3 of them are FATAL)
READY_MARGIN = 0.6


def run(size: Size, seed: int = 8) -> Outcome:
    out = Outcome("worker_kills")
    rnd = random.Random(seed)
    kills = size.worker_kills
    with Mosquitto() as broker:
        inbox = Inbox()
        echoes = [0]

        def on_msg(topic: str, payload: bytes) -> None:
            if topic.startswith("wk/") and topic.endswith("/out"):
                echoes[0] += 1
            else:
                inbox(topic, payload)

        watch = Watch(broker.port, on_msg, [(f"{REALM}/proc/control/+", 1), ("wk/+/out", 0)])
        node = NodeProcess(broker.port, name="wk", runtimes=["test/echo"] * 3, reg_timeout=0.3, backoff=0.1,
                           log_level="DBG")
        stop_traffic = threading.Event()
        sent = [0]
        try:
            node.start(timeout=60)
            sid = node.pid
            names = sorted(node.runtime_uuids)
            short = {n: n.split(".", 1)[1] for n in names}
            rt = node.runtime_uuids
            victims: dict[str, str] = {}
            for n in names:
                watch.publish(f"{REALM}/proc/control/{rt[n]}", module_create(
                    f"keeper-{short[n]}", rt[n], fault_crash="restart",
                    channels=[{"path": "in", "mode": "r", "topic": f"wk/{short[n]}/in"},
                              {"path": "out", "mode": "w", "topic": f"wk/{short[n]}/out"}])).wait_for_publish(5)
                victims[n] = str(_uuid.uuid4())
                watch.publish(f"{REALM}/proc/control/{rt[n]}", module_create(victims[n], rt[n])).wait_for_publish(5)
            for n in names:
                wait_until(lambda: f"opened channel 1 on wk/{short[n]}/out" in node.output(), 20, f"keeper of {n} open")

            def traffic() -> None:
                while not stop_traffic.is_set():
                    for n in names:
                        watch.publish(f"wk/{short[n]}/in", b"x" * 64, qos=0)
                        sent[0] += 1
                    time.sleep(0.005)

            pub = threading.Thread(target=traffic, daemon=True)
            pub.start()
            ipc_start = len(ipc_objects(sid))
            first_seen: dict[int, float] = {}
            restarts = unreported = keeper_missing = 0
            kills_of = {n: 0 for n in names}
            rss_warm = 0
            t0 = time.monotonic()
            for i in range(kills):
                if i == max(1, kills // 10):
                    rss_warm = rss_kb(sid)

                def ready() -> list[tuple[str, int]]:
                    now = time.monotonic()
                    cur = workers_by_name(sid)
                    for pid in cur.values():
                        first_seen.setdefault(pid, now)
                    return [(n, p) for n, p in cur.items() if n in rt and now - first_seen[p] > STARTSECS + READY_MARGIN]

                cands = wait_until(ready, 30, "a RUNNING worker to kill")
                name, pid = rnd.choice(cands)
                victim = victims[name]
                mark = len(inbox)
                os.kill(pid, signal.SIGKILL)
                kills_of[name] += 1
                try:
                    wait_until(lambda: (p := workers_by_name(sid).get(name)) and p != pid and alive(p), 20,
                               f"a new worker for {name}")
                    restarts += 1
                except TimeoutError as e:
                    out.fail(f"kill {i + 1}: {e}")
                try:
                    inbox.wait(lambda t, p: js(p).get("action") == "exited" and js(p)["data"].get("uuid") == victim
                               and js(p)["data"]["status"]["reason"] == "crashed", 20, since=mark)
                except TimeoutError:
                    unreported += 1
                    out.fail(f"kill {i + 1}: module {victim} on {name} was not reported crashed")
                victims[name] = str(_uuid.uuid4())
                watch.publish(f"{REALM}/proc/control/{rt[name]}", module_create(victims[name], rt[name]))
            elapsed = time.monotonic() - t0
            # every keeper came back once per kill of its worker, and still echoes
            for n in names:
                want = kills_of[n] + 1
                try:
                    wait_until(lambda: node.output().count(f"opened channel 1 on wk/{short[n]}/out") >= want,
                               20, f"keeper of {n} re-created {kills_of[n]} times")
                except TimeoutError as e:
                    keeper_missing += 1
                    out.fail(str(e))
            stop_traffic.set()
            pub.join(5)
            before = echoes[0]
            for n in names:
                watch.publish(f"wk/{short[n]}/in", b"final", qos=1).wait_for_publish(5)
            try:
                wait_until(lambda: echoes[0] >= before + len(names), 20, "every keeper echoes after the kills")
            except TimeoutError as e:
                keeper_missing += 1
                out.fail(str(e))
            ipc_end = len(ipc_objects(sid))
            rss_end = rss_kb(sid)
            node.stop()
            leaked_after_stop = len(ipc_objects(sid))
            leaked = max(0, ipc_end - ipc_start) + leaked_after_stop
            out.figures.update({
                "worker_kills": kills, "worker_restarts": restarts, "modules_unreported": unreported + keeper_missing,
                "victims_reported_crashed": kills - unreported, "keepers_recreated": sum(kills_of.values()) if not keeper_missing else None,
                "leaked_ipc_objects": leaked, "ipc_objects_during_run": ipc_start,
                "supervisor_rss_kb_warm": rss_warm, "supervisor_rss_kb_end": rss_end,
                "supervisor_rss_growth_kb": rss_end - rss_warm if rss_warm else None,
                "traffic_sent": sent[0], "traffic_echoed": echoes[0], "kill_phase_s": round(elapsed, 1),
            })
            out.check(restarts == kills, f"{kills} kills but {restarts} restarts")
            out.check(leaked == 0, f"{leaked} IPC objects leaked ({ipc_start} at start, {ipc_end} at the end, {leaked_after_stop} after stop)")
            out.check(not rss_warm or rss_end - rss_warm < 4096, f"supervisor RSS grew {rss_end - rss_warm} KiB during the kills")
        finally:
            stop_traffic.set()
            node.stop()
            watch.close()
    return out
