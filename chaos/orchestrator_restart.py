"""Scenario 4: restart the orchestrator (SIGTERM, then SIGKILL) while a node runs and modules queue.

A node with `test/single` (max_nmodules 1): one module runs, two more are queued at the
orchestrator. The orchestrator is stopped and started on the same store, once gracefully and once
with SIGKILL. After each: the runtime is alive, the running module alive, the queue holds the same
modules in the same order; finally deleting the running module starts the first queued one.
"""
from __future__ import annotations

import signal
import tempfile
import time
from typing import Any

from chaos.base import REALM, Outcome, Size, Watch, control, wait_until
from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc


def snapshot(orch: OrchestratorProc, rt: str) -> dict[str, Any]:
    r = orch.get(f"/api/runtimes/{rt}/")
    return {"runtime": r["status"], "children": sorted(c["uuid"] for c in r.get("children", [])),
            "queued": [q["uuid"] for q in orch.get("/api/queued/")["results"]]}


def run(size: Size) -> Outcome:
    out = Outcome("orchestrator_restart")
    tmp = tempfile.mkdtemp(prefix="sl-chaos-or-")
    intact = 0
    restarts = 0
    reload_s: list[float] = []
    with Mosquitto() as broker:
        orch = OrchestratorProc(broker.port, tmp, ka_interval=1.0).start()
        watch = Watch(broker.port, lambda t, p: None, [(f"{REALM}/proc/log", 1)])
        try:
            with NodeProcess(broker.port, name="orq", runtimes=["test/single"], reg_timeout=5) as node:
                rt = node.runtime_uuid()
                wait_until(lambda: orch.get_status(f"/api/runtimes/{rt}/")[1].get("status") == "A", 30, "runtime alive")
                mods = [f"00000000-0000-4000-8000-0000000000{i:02d}" for i in range(3)]
                for i, u in enumerate(mods):
                    watch.publish(f"{REALM}/proc/control", control("create", {"type": "module", "uuid": u, "name": f"q{i}",
                                                                              "parent": rt, "file": "none.wasm"})).wait_for_publish(5)
                    if i == 0:
                        wait_until(lambda: orch.get_status(f"/api/modules/{u}/")[1].get("status") == "A", 30, "first module alive")
                wait_until(lambda: len(orch.get("/api/queued/")["results"]) == 2, 30, "two modules queued")
                before = snapshot(orch, rt)
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    orch.stop(sig)
                    t0 = time.monotonic()
                    orch.start()
                    reload_s.append(time.monotonic() - t0)
                    restarts += 1
                    after = snapshot(orch, rt)
                    if out.check(after == before, f"after a {signal.Signals(sig).name} restart the state differs: {before} -> {after}"):
                        intact += 1
                    time.sleep(1.5)  # keepalives of the node reach the new process: the runtime stays alive
                    st = orch.get(f"/api/runtimes/{rt}/")["status"]
                    out.check(st == "A", f"runtime {st!r} after the {signal.Signals(sig).name} restart")
                watch.publish(f"{REALM}/proc/control", control("delete", {"type": "module", "uuid": mods[0]})).wait_for_publish(5)
                try:
                    wait_until(lambda: orch.get_status(f"/api/modules/{mods[1]}/")[1].get("status") == "A", 30,
                               "the first queued module starts after the running one is deleted")
                except TimeoutError as e:
                    out.fail(str(e))
                out.check(orch.get("/api/queued/")["results"][0]["uuid"] == mods[2], "the queue lost its order")

        finally:
            watch.close()
            orch.stop()
    out.figures.update({"orchestrator_restarts": restarts, "orchestrator_state_intact": intact,
                        "orchestrator_restart_s_max": round(max(reload_s), 2) if reload_s else None})
    return out
