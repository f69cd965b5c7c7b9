"""Scenario 3: SIGKILL the supervisor.

A node (state directory, so the same name keeps its uuids) with two `test/echo` runtimes runs
modules created through the orchestrator. The supervisor is SIGKILLed; its workers are watched
every 5 ms (`PR_SET_PDEATHSIG` must take them down): a worker alive 1 s later is an orphan. The
manager's last will must reach the orchestrator (runtimes dead, modules killed). A node started
again with the same name must get its modules back (resurrected, echoing on their channels), and
its start removes the IPC objects the killed supervisor could not unlink.
"""
from __future__ import annotations

import os
import signal
import tempfile
import time

from chaos.base import REALM, Inbox, Outcome, Size, Watch, alive, ipc_objects, js, module_create, wait_until
from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc

NMOD = 3


def run(size: Size) -> Outcome:
    out = Outcome("supervisor_kill")
    tmp = tempfile.mkdtemp(prefix="sl-chaos-sk-")
    state = os.path.join(tmp, "state")
    rounds = max(1, size.broker_outages)
    inbox = Inbox()
    orphans = 0
    survival: list[float] = []
    will_s: list[float] = []
    resurrected = 0
    leaked = 0
    with Mosquitto() as broker, OrchestratorProc(broker.port, tmp, ka_interval=1.0) as orch:
        watch = Watch(broker.port, inbox, [(f"{REALM}/proc/reg/#", 2), ("sk/+/out", 1)])
        node: NodeProcess | None = None
        try:
            node = NodeProcess(broker.port, name="sk", runtimes=["test/echo", "test/echo"], reg_timeout=5, state_dir=state)
            node.start(timeout=60)
            rts = sorted(node.runtime_uuids.values())
            wait_until(lambda: all(orch.get_status(f"/api/runtimes/{r}/")[1].get("status") == "A" for r in rts), 30, "runtimes alive")
            mods = []
            for i in range(NMOD):
                u = f"00000000-0000-4000-8000-00000000000{i}"
                mods.append(u)
                watch.publish(f"{REALM}/proc/control", module_create(
                    u, rts[i % 2], name=f"sk-{i}", channels=[{"path": "io", "mode": "rw", "topic": f"sk/{i}/io"}],
                    prefix="echo:")).wait_for_publish(5)
            wait_until(lambda: all(orch.get_status(f"/api/modules/{u}/")[1].get("status") == "A" for u in mods), 30, "modules alive")

            def echoes() -> int:
                """Modules that answer on their channel (the test/echo module publishes `echo:` + what it read)."""
                ok = 0
                for i in range(NMOD):
                    mark = len(inbox)
                    for attempt in range(40):
                        watch.publish(f"sk/{i}/io", f"ping{attempt}".encode(), qos=1)
                        try:
                            inbox.wait(lambda t, p: t == f"sk/{i}/io" and p.startswith(b"echo:"), 0.5, since=mark)
                            ok += 1
                            break
                        except TimeoutError:
                            continue
                return ok

            watch.client.subscribe([(f"sk/{i}/io", 1) for i in range(NMOD)])
            out.check(echoes() == NMOD, "modules did not echo before the kill")
            for r in range(rounds):
                sid = node.pid
                workers = node.worker_pids()
                mark = len(inbox)
                t0 = time.monotonic()
                os.kill(sid, signal.SIGKILL)
                last_alive = t0
                while time.monotonic() - t0 < 1.0 and any(alive(p) for p in workers):
                    last_alive = time.monotonic()
                    time.sleep(0.005)
                survival.append(last_alive - t0)
                orphans += sum(1 for p in workers if alive(p))
                for p in workers:
                    if alive(p):
                        os.kill(p, signal.SIGKILL)
                node.kill()  # reap
                try:
                    will = f"{REALM}/proc/reg/{node.manager_uuid}"
                    hit = inbox.wait(lambda t, p: t == will and js(p).get("action") == "delete", 30, since=mark)
                    will_s.append(hit[0][0] - t0)
                except TimeoutError:
                    out.fail(f"round {r + 1}: the last will did not arrive within 30 s")
                try:
                    wait_until(lambda: all(orch.get_status(f"/api/modules/{u}/")[1].get("status") == "K" for u in mods), 30,
                               "the orchestrator marks the modules killed")
                except TimeoutError as e:
                    out.fail(f"round {r + 1}: {e}")
                stale = ipc_objects(sid)
                node = NodeProcess(broker.port, name="sk", runtimes=["test/echo", "test/echo"], reg_timeout=5, state_dir=state)
                node.start(timeout=60)
                leaked += len(ipc_objects(sid))  # the new supervisor removes the dead one's objects at start
                out.check(sorted(node.runtime_uuids.values()) == rts, "a restart with the same name got other uuids")
                try:
                    wait_until(lambda: all(orch.get_status(f"/api/modules/{u}/")[1].get("status") == "A" for u in mods), 30,
                               "modules resurrected")
                except TimeoutError as e:
                    out.fail(f"round {r + 1}: {e}")
                n = echoes()
                resurrected += n
                out.check(n == NMOD, f"round {r + 1}: {n}/{NMOD} modules echo after the restart")
                out.figures.setdefault("stale_ipc_objects_left_by_kill", len(stale))
            node.stop()
            leaked += len(ipc_objects(node.pid))
        finally:
            if node is not None:
                node.stop()
            watch.close()
    out.figures.update({
        "supervisor_kills": rounds, "orphans_after_supervisor_kill": orphans,
        "worker_survival_ms_max": round(max(survival) * 1000, 1) if survival else None,
        "last_will_ms_max": round(max(will_s) * 1000, 1) if will_s else None,
        "modules_resurrected": resurrected, "modules_expected": rounds * NMOD, "leaked_ipc_objects": leaked,
    })
    out.check(orphans == 0, f"{orphans} workers outlived their supervisor by more than 1 s")
    out.check(leaked == 0, f"{leaked} IPC objects of killed supervisors were not removed")
    return out
