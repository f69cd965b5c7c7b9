"""Scenario 6: the sandbox of the `linux` runtime (real wasmtime, the example modules of modules/).

A node runs the `linux` runtime with a 32 MiB memory limit per module. Each attempt is a real
module created over MQTT; its stdout comes back on `{realm}/proc/stdio/{uuid}` and its end on the
control topic. An *escape* is an attempt that got what it should not have:
- files: `readfile` with one preopened dir tries `/etc/passwd`, `..` out of the dir, a symlink out
  of the dir, and an absolute path next to the dir (a control reads a file inside: it must work);
- topics: `opener` opens a granted and several non-granted topics (the granted one must work);
- memory: `memhog` allocates until refused: more than the limit is an escape;
- CPU: `spin` with `args.resources` of 20% of one CPU: the worker's CPU time over the wall time
  while it spins must stay near the budget (escape above 1.5x the budget + 5 points);
- module files: `file` naming something outside the module roots (absolute, `..`, a symlink in a
  root pointing out) must be refused, never run.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid as _uuid
from typing import Any

from chaos.base import REALM, ROOT, Inbox, Outcome, Size, Watch, js, module_create, workers_by_name
from tests.helpers.broker import Mosquitto
from tests.helpers.node import NodeProcess

MODULES = os.path.join(ROOT, "build", "modules")
MEM_LIMIT = 32 << 20
CPU_SHARE = 0.2


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Runner:
    def __init__(self, node: NodeProcess, watch: Watch, inbox: Inbox) -> None:
        self.node, self.watch, self.inbox = node, watch, inbox
        self.rt = node.runtime_uuid()

    def start(self, file: str, argv: list[str], **kw: Any) -> tuple[str, int]:
        u = str(_uuid.uuid4())
        mark = len(self.inbox)
        channels = kw.pop("channels", None)
        self.watch.publish(f"{REALM}/proc/control/{self.rt}", module_create(u, self.rt, file=file, argv=argv, channels=channels,
                                                                           **kw)).wait_for_publish(10)
        return u, mark

    def finish(self, u: str, mark: int, timeout: float = 60) -> tuple[str, dict[str, Any]]:
        ex = self.inbox.wait(lambda t, p: js(p).get("action") == "exited" and js(p)["data"].get("uuid") == u, timeout, since=mark)
        time.sleep(0.1)
        out = b"".join(p for _, t, p in self.inbox.find(lambda t, p: t == f"{REALM}/proc/stdio/{u}", mark))
        return out.decode(errors="replace"), js(ex[0][2])["data"]["status"]

    def run(self, file: str, argv: list[str], timeout: float = 60, **kw: Any) -> tuple[str, dict[str, Any]]:
        u, mark = self.start(file, argv, **kw)
        return self.finish(u, mark, timeout)


def spin_share(r: Runner, node: NodeProcess, resources: dict[str, int] | None, window: float = 3.0) -> float:
    """CPU time of the worker over wall time while one `spin` module runs (deleted after `window` s)."""
    kw = {"resources": resources} if resources else {}
    wpid = next(iter(workers_by_name(node.pid).values()))
    c0, t0 = _cpu_s(wpid), time.monotonic()
    u, mark = r.start("spin.wasm", ["2000"], **kw)  # 2000 x 10^6 iterations: a C long is 32 bits in wasm32
    done = lambda: r.inbox.find(lambda t, p: js(p).get("action") == "exited" and js(p)["data"].get("uuid") == u, mark)
    while time.monotonic() - t0 < window and not done():
        time.sleep(0.01)
    c1, t1 = _cpu_s(wpid), time.monotonic()
    if not done():
        r.watch.publish(f"{REALM}/proc/control/{r.rt}", json.dumps({"object_id": "d", "action": "delete", "type": "req",
                                                                     "data": {"type": "module", "uuid": u}})).wait_for_publish(10)
    r.finish(u, mark)
    return (c1 - c0) / (t1 - t0)


def run(size: Size) -> Outcome:
    out = Outcome("sandbox")
    missing = [m for m in ("readfile.wasm", "opener.wasm", "memhog.wasm", "spin.wasm", "helloworld.wasm") if not os.path.exists(os.path.join(MODULES, m))]
    if missing:
        out.fail(f"example modules missing ({', '.join(missing)}): run `make modules` first")
        return out
    tmp = tempfile.mkdtemp(prefix="sl-chaos-sb-")
    allowed = os.path.join(tmp, "allowed")
    os.makedirs(allowed)
    secret = os.path.join(tmp, "secret.txt")
    with open(secret, "w") as f:
        f.write("SECRET-OUTSIDE")
    with open(os.path.join(allowed, "ok.txt"), "w") as f:
        f.write("INSIDE-OK")
    os.symlink(secret, os.path.join(allowed, "link.txt"))
    root2 = os.path.join(tmp, "root2")  # a second module root holding a symlink that points out of the roots
    os.makedirs(root2)
    outside_wasm = os.path.join(tmp, "outside.wasm")
    shutil.copy(os.path.join(MODULES, "helloworld.wasm"), outside_wasm)
    os.symlink(outside_wasm, os.path.join(root2, "sneaky.wasm"))
    cfg = os.path.join(tmp, "config.json")
    with open(cfg, "w") as f:
        json.dump({"runtimes": {"linux": {"module_root": [MODULES, root2], "memory_limit": MEM_LIMIT,
                                          "cache_dir": os.path.join(tmp, "cache")}}}, f)
    escapes: dict[str, int] = {"files": 0, "topics": 0, "memory": 0, "cpu": 0, "module_files": 0}
    attempts: dict[str, int] = {k: 0 for k in escapes}
    figures: dict[str, Any] = {}
    try:
        with Mosquitto() as broker:
            inbox = Inbox()
            watch = Watch(broker.port, inbox, [(f"{REALM}/proc/#", 1)])
            node = NodeProcess(broker.port, name="sb", runtimes=["linux"], reg_timeout=0.3, extra_args=["-c", cfg], log_level="INF")
            try:
                node.start(timeout=90)
                r = Runner(node, watch, inbox)
                for _ in range(size.sandbox_repeats):
                    # files
                    text, st = r.run("readfile.wasm", [os.path.join(allowed, "ok.txt")], dirs=[allowed])
                    out.check("INSIDE-OK" in text, f"control: a module cannot read a file in its preopened dir ({text!r}, {st})")
                    for path in ("/etc/passwd", os.path.join(allowed, "..", "secret.txt"), os.path.join(allowed, "link.txt"), secret,
                                 "../secret.txt", "/proc/self/environ"):
                        attempts["files"] += 1
                        text, st = r.run("readfile.wasm", [path], dirs=[allowed])
                        if "SECRET-OUTSIDE" in text or "root:" in text or "PATH=" in text:
                            escapes["files"] += 1
                            out.fail(f"files: read {path!r} outside the preopened dir: {text[:80]!r}")
                    # topics
                    attempts["topics"] += 3
                    text, st = r.run("opener.wasm", ["granted/x", "rw", "secret/x", "r", "secret/y", "w", "realm/proc/control", "w"],
                                     channels=[{"path": "granted", "mode": "rw", "topic": "sb/granted"}])
                    lines = {l.split(" -> ")[0]: l.split(" -> ")[-1] for l in text.splitlines() if " -> " in l}
                    out.check(lines.get("open granted/x rw", "-1").lstrip("-").isdigit() and not lines.get("open granted/x rw", "-1").startswith("-"),
                              f"control: a granted topic could not be opened ({text!r})")
                    for k in ("open secret/x r", "open secret/y w", "open realm/proc/control w"):
                        v = lines.get(k)
                        if v is None or not v.startswith("-"):
                            escapes["topics"] += 1
                            out.fail(f"topics: {k!r} -> {v!r} (want a negative error code)")
                    # memory
                    attempts["memory"] += 1
                    text, st = r.run("memhog.wasm", [], timeout=90)
                    got = [int(w) for w in text.split() if w.isdigit()]
                    mib = got[0] if got else None
                    figures["memhog_mib_before_refused"] = mib
                    figures["memhog_status"] = st.get("reason")
                    if "allocated" in text or (mib is not None and mib > MEM_LIMIT >> 20):
                        escapes["memory"] += 1
                        out.fail(f"memory: memhog got past the {MEM_LIMIT >> 20} MiB limit: {text[:100]!r}")
                    # CPU: the same spinning module without a budget is the control
                    attempts["cpu"] += 1
                    period = 100_000_000
                    share = spin_share(r, node, {"period": period, "runtime": int(period * CPU_SHARE)})
                    free = spin_share(r, node, None)
                    figures["cpu_unlimited_control"] = round(free, 3)
                    figures["cpu_budget"] = CPU_SHARE
                    figures["cpu_used"] = round(share, 3)
                    out.check(free > 0.5, f"control: an unthrottled spinning module used only {free:.0%} of a CPU")
                    if share > CPU_SHARE * 1.5 + 0.05:
                        escapes["cpu"] += 1
                        out.fail(f"cpu: a module with a {CPU_SHARE:.0%} budget used {share:.0%} of a CPU")
                    # module files
                    for f in ("/etc/passwd", outside_wasm, "../../../../etc/passwd", os.path.join(MODULES, "..", "..", "README.md"), "sneaky.wasm"):
                        attempts["module_files"] += 1
                        text, st = r.run(f, [])
                        if st.get("reason") != "error" or "Hello" in text:
                            escapes["module_files"] += 1
                            out.fail(f"module files: {f!r} was not refused: {st}, {text[:60]!r}")
                        elif not st.get("error"):
                            out.fail(f"module files: {f!r} refused without a reason: {st}")
                        else:
                            figures.setdefault("module_file_error_example", st["error"][:160])
            finally:
                node.stop()
                watch.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out.figures.update(figures)
    out.figures["sandbox_attempts"] = sum(attempts.values())
    out.figures["sandbox_escapes_by_kind"] = escapes
    out.figures["sandbox_escapes"] = sum(escapes.values())
    return out
