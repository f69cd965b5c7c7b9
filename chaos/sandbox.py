"""Scenario 6: the sandbox of every runtime kind, the limits of benchmark children, the broker's ACL.

Part 1 below is the `linux` runtime's sandbox; part 2 (`_runtimes`) runs every runtime kind (linux,
the minimal runtimes, every benchmarking runtime) and sends each path field of a create (`file`,
`dirs`, `stdout`, `dirmode`, `scriptmode`) outside the module roots, and native / unsandboxed engines
while they are off: all must be refused. Part 3 (`_limits`): a fork bomb, memory hogs (native and
wasm) and an output flood on a `benchmarking` runtime must end as `limit` with their cause. Part 4
(`_acl`): a realm under `manage.py acl`: creates not from the orchestrator's account and
anonymous / wrong-password clients must be refused by the broker (`acl_refusals_expected` =
`acl_refusals_seen`). Part 1:

A node runs the `linux` runtime with a 32 MiB memory limit per module. Each attempt is a real
module created over MQTT; its stdout comes back on `{realm}/proc/stdio/{uuid}` and its end on the
control topic. An *escape* is an attempt that got what it should not have:
- files: `readfile` with one preopened dir tries `/etc/passwd`, `..` out of the dir, a symlink out
  of the dir, and an absolute path next to the dir (a control reads a file inside: it must work);
- topics: `opener` opens a granted and several non-granted topics (the granted one must work);
- memory: `memhog` allocates until refused: more than the limit is an escape;
- CPU: `spin` with `args.resources` of 20% of one CPU, or a third of what the same module got
  without a budget just before (the control: on a busy machine a spinning module gets less than
  20%, and a budget above that would prove nothing): the worker's CPU time over the wall time while
  it spins must stay near the budget (escape above 1.5x the budget + 5 points);
- module files: `file` naming something outside the module roots (absolute, `..`, a symlink in a
  root pointing out) must be refused, never run.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid as _uuid
from typing import Any, Iterator

from chaos.base import REALM, ROOT, Inbox, Outcome, Size, Watch, control, js, module_create, wait_until, workers_by_name
from testbed.broker import Mosquitto
from testbed.node import NodeProcess

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

    def done() -> bool:
        return bool(r.inbox.find(lambda t, p: js(p).get("action") == "exited" and js(p)["data"].get("uuid") == u, mark))

    while time.monotonic() - t0 < window and not done():
        time.sleep(0.01)
    c1, t1 = _cpu_s(wpid), time.monotonic()
    if not done():
        r.watch.publish(f"{REALM}/proc/control/{r.rt}", json.dumps({"object_id": "d", "action": "delete", "type": "req",
                                                                     "data": {"type": "module", "uuid": u}})).wait_for_publish(10)
    r.finish(u, mark)
    return (c1 - c0) / (t1 - t0)


def _linux(size: Size, out: Outcome, attempts: dict[str, int], escapes: dict[str, int], figures: dict[str, Any]) -> None:
    """Part 1: the `linux` runtime's sandbox (files, topics, memory, CPU, module files)."""
    tmp = tempfile.mkdtemp(prefix="sl-chaos-sb-")
    allowed = os.path.join(tmp, "allowed")
    os.makedirs(allowed)
    secret = os.path.join(tmp, "secret.txt")
    with open(secret, "w") as fh:
        fh.write("SECRET-OUTSIDE")
    with open(os.path.join(allowed, "ok.txt"), "w") as fh:
        fh.write("INSIDE-OK")
    os.symlink(secret, os.path.join(allowed, "link.txt"))
    root2 = os.path.join(tmp, "root2")  # a second module root holding a symlink that points out of the roots
    os.makedirs(root2)
    outside_wasm = os.path.join(tmp, "outside.wasm")
    shutil.copy(os.path.join(MODULES, "helloworld.wasm"), outside_wasm)
    os.symlink(outside_wasm, os.path.join(root2, "sneaky.wasm"))
    cfg = os.path.join(tmp, "config.json")
    with open(cfg, "w") as fh:
        json.dump({"runtimes": {"linux": {"module_root": [MODULES, root2, allowed], "memory_limit": MEM_LIMIT,
                                          "cache_dir": os.path.join(tmp, "cache")}}}, fh)
    for k in ("files", "topics", "memory", "cpu", "module_files"):
        escapes.setdefault(k, 0)
        attempts.setdefault(k, 0)
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
                    # CPU: the same spinning module without a budget is the control: what this machine
                    # gives a spinning module now. The budget is well under it, so an escape would show.
                    attempts["cpu"] += 1
                    period = 100_000_000
                    free = spin_share(r, node, None)
                    budget = max(0.02, min(CPU_SHARE, round(free / 3, 3)))
                    share = spin_share(r, node, {"period": period, "runtime": int(period * budget)})
                    figures["cpu_unlimited_control"] = round(free, 3)
                    figures["cpu_budget"] = budget
                    figures["cpu_used"] = round(share, 3)
                    out.check(free >= 0.1, f"control: an unthrottled spinning module used only {free:.0%} of a CPU"
                                           " (too busy a machine to tell a budget from the load)")
                    if share > budget * 1.5 + 0.05:
                        escapes["cpu"] += 1
                        out.fail(f"cpu: a module with a {budget:.0%} budget used {share:.0%} of a CPU (without one: {free:.0%})")
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


# -- part 2: every runtime kind, every path field -------------------------------------------------

def _kinds() -> list[str]:
    """Every runtime kind that can start here (linux/min/wasmer needs a Python 3.10 with wasmer)."""
    from common.python310 import find_wasmer_python

    kinds = ["linux", "linux/min/wasmtime", "benchmarking", "benchmarking/seeded", "benchmarking/interference",
             "benchmarking/opcodes"]
    if find_wasmer_python(None)[0]:
        kinds.insert(2, "linux/min/wasmer")
    return kinds


class Attempts:
    """Creates over MQTT on any runtime of a node; `run()` returns (stdout, exited status)."""

    def __init__(self, watch: Watch, inbox: Inbox) -> None:
        self.watch, self.inbox = watch, inbox

    def run(self, rt: str, file: str, timeout: float = 90, **args: Any) -> tuple[str, dict[str, Any]]:
        u = str(_uuid.uuid4())
        mark = len(self.inbox)
        self.watch.publish(f"{REALM}/proc/control/{rt}", module_create(u, rt, file=file, **args)).wait_for_publish(10)
        ex = self.inbox.wait(lambda t, p: js(p).get("action") == "exited" and js(p)["data"].get("uuid") == u, timeout, since=mark)
        time.sleep(0.05)
        text = b"".join(p for _, t, p in self.inbox.find(lambda t, p: t == f"{REALM}/proc/stdio/{u}", mark))
        data = js(ex[0][2])["data"]
        return text.decode(errors="replace"), dict(data["status"], **{k: v for k, v in data.items() if k in ("limit", "failure")})


@contextlib.contextmanager
def _node_with_broker(name: str, runtimes: list[str], extra_args: list[str]) -> Iterator[tuple[NodeProcess, Attempts]]:
    """A broker, a watcher of `{realm}/proc/#` and a started node; all stopped at the end."""
    with Mosquitto() as broker:
        inbox = Inbox()
        watch = Watch(broker.port, inbox, [(f"{REALM}/proc/#", 1)])
        node = NodeProcess(broker.port, name=name, runtimes=runtimes, reg_timeout=0.3, log_level="INF", extra_args=extra_args)
        try:
            node.start(timeout=120)
            yield node, Attempts(watch, inbox)
        finally:
            node.stop()
            watch.close()


def _refused(st: dict[str, Any]) -> bool:
    return st.get("reason") == "error" and "outside the module roots" in str(st.get("error"))


def _runtimes(out: Outcome, attempts: dict[str, int], escapes: dict[str, int], figures: dict[str, Any]) -> None:
    """Part 2: on every runtime kind, every path field of a create outside the module roots is refused,
    and native / command-line engines are refused while the configuration does not enable them."""
    tmp = tempfile.mkdtemp(prefix="sl-chaos-sbk-")
    root, outside = os.path.join(tmp, "root"), os.path.join(tmp, "outside")
    for d in (root, outside, os.path.join(root, "in"), os.path.join(outside, "in")):
        os.makedirs(d, exist_ok=True)
    for d in (root, outside):
        shutil.copy(os.path.join(MODULES, "helloworld.wasm"), os.path.join(d, "hello.wasm"))
        with open(os.path.join(d, "in", "a"), "w") as fh:
            fh.write("a")
        with open(os.path.join(d, "args.py"), "w") as fh:
            fh.write("print(1)\n")
    os.symlink(os.path.join(outside, "hello.wasm"), os.path.join(root, "sneaky.wasm"))
    os.symlink(outside, os.path.join(root, "dirlink"))
    marker = os.path.join(tmp, "PWNED")
    kinds = _kinds()
    escapes.setdefault("runtime_paths", 0)
    attempts.setdefault("runtime_paths", 0)
    escapes.setdefault("engines_off", 0)
    attempts.setdefault("engines_off", 0)
    try:
        with _node_with_broker("sbk", kinds, ["--module-root", root]) as (node, a):
            short = {k: k.rstrip("/").split("/")[-1] for k in kinds}
            rts = {k: node.runtime_uuids[f"sbk.{short[k]}"] for k in kinds}
            per_kind: dict[str, int] = {}
            for kind, rt in rts.items():
                bench = kind.startswith("benchmarking")
                extra: dict[str, Any] = {"engine": "wasmtime"} if bench and kind != "benchmarking/opcodes" else {}
                # control: the module inside the root runs
                text, st = a.run(rt, "hello.wasm" if kind != "benchmarking/interference" else "hello.wasm:hello.wasm", **extra)
                out.check(st.get("reason") == "exited", f"control: {kind} cannot run a module inside the roots: {st}")
                cases: list[tuple[str, str, dict[str, Any]]] = [
                    ("file", os.path.join(outside, "hello.wasm"), {}), ("file", "../outside/hello.wasm", {}),
                    ("file", "sneaky.wasm", {})]
                if kind == "linux" or bench:
                    cases += [("dirs", "hello.wasm", {"dirs": [outside]}), ("dirs", "hello.wasm", {"dirs": ["dirlink"]}),
                              ("dirs", "hello.wasm", {"dirs": ["/"]})]
                if bench:
                    cases += [("stdout", "hello.wasm", {"stdout": os.path.join(outside, "out.txt")}),
                              ("stdout", "hello.wasm", {"stdout": "dirlink/out2.txt"})]
                if kind == "benchmarking/seeded":
                    cases += [("dirmode", "hello.wasm", {"dirmode": os.path.join(outside, "in")}),
                              ("scriptmode", "hello.wasm", {"scriptmode": os.path.join(outside, "args.py")})]
                for field, f, args in cases:
                    attempts["runtime_paths"] += 1
                    per_kind[kind] = per_kind.get(kind, 0) + 1
                    if kind == "benchmarking/interference":
                        f = f"hello.wasm:{f}" if field == "file" else f"{f}:{f}"
                    text, st = a.run(rt, f, **extra, **args)
                    if not _refused(st) or "Hello" in text:
                        escapes["runtime_paths"] += 1
                        out.fail(f"{kind}: {field} {args or f!r} outside the roots was not refused: {st}")
                    elif field != "file" and f"args.{field}" not in str(st.get("error")):
                        out.fail(f"{kind}: the refusal of {field} does not name it: {st}")
                # opt-in engines are off here
                if bench and kind != "benchmarking/opcodes":
                    for eng, f in (("native", "/usr/bin/touch"), ("native", "hello.wasm"), ("wasmer", "hello.wasm")):
                        attempts["engines_off"] += 1
                        argv = [marker]
                        text, st = a.run(rt, f if kind != "benchmarking/interference" else f"{f}:{f}", engine=eng, argv=argv)
                        if st.get("reason") != "error" or "is off on this node" not in str(st.get("error")) or os.path.exists(marker):
                            escapes["engines_off"] += 1
                            out.fail(f"{kind}: engine {eng} on {f} was not refused as off: {st}")
            for p in (os.path.join(outside, "out.txt"), os.path.join(outside, "out2.txt")):
                if os.path.exists(p):
                    escapes["runtime_paths"] += 1
                    out.fail(f"a benchmark wrote {p} outside the roots")
            figures["runtime_kinds"] = kinds
            figures["path_attempts_by_kind"] = per_kind
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- part 3: limits of benchmark children ---------------------------------------------------------

BOMB = "#!/bin/sh\nfor i in $(seq 400); do sleep 3 & done\nwait\n"  # bounded: harmless if a limit failed
FLOOD = "#!/bin/sh\nexec yes flood\n"
HOG = "#!/bin/sh\nexec python3 -c 'b = []\nfor _ in range(256): b.append(bytearray(16 << 20))'\n"


def _limits(out: Outcome, attempts: dict[str, int], escapes: dict[str, int], figures: dict[str, Any]) -> None:
    """Part 3: a fork bomb, a memory hog (native and wasm) and an output flood end as `limit` with
    their cause; the node stays up (a module after them runs)."""
    from benchmarking import limits as child_limits

    tmp = tempfile.mkdtemp(prefix="sl-chaos-sbl-")
    root = os.path.join(tmp, "root")
    os.makedirs(root)
    for name, text in (("bomb", BOMB), ("flood", FLOOD), ("hog", HOG)):
        with open(os.path.join(root, name), "w") as fh:
            fh.write(text)
        os.chmod(os.path.join(root, name), 0o755)
    for m in ("memhog.wasm", "helloworld.wasm"):
        shutil.copy(os.path.join(MODULES, m), os.path.join(root, m))
    cfg = os.path.join(tmp, "config.json")
    with open(cfg, "w") as fh:
        json.dump({"runtimes": {"benchmarking": {"enable_engines": ["native"], "child_limits": {
            "memory_bytes": 256 << 20, "file_bytes": 1 << 20, "processes": 32}}}}, fh)
    escapes.setdefault("limits", 0)
    attempts.setdefault("limits", 0)
    causes: dict[str, Any] = {}
    try:
        with _node_with_broker("sbl", ["benchmarking"], ["--module-root", root, "-c", cfg]) as (node, a):
            rt = node.runtime_uuid()
            cases: list[tuple[str, str, dict[str, Any], str]] = [("fork_bomb", "bomb", {"engine": "native"}, "processes"),
                     ("memory_hog", "hog", {"engine": "native"}, "memory_bytes"),
                     ("memory_hog_wasm", "memhog.wasm", {"engine": "wasmtime"}, "memory_bytes"),
                     ("output_flood", "flood", {"engine": "native", "stdout": "flood.txt"}, "file_bytes")]
            if child_limits.pids_cgroup_parent() is None and os.geteuid() == 0:
                cases = cases[1:]  # root without a writable pids cgroup: RLIMIT_NPROC does not bind root
                figures["fork_bomb"] = "skipped: root without a writable pids cgroup"
            for what, f, args, cause in cases:
                attempts["limits"] += 1
                t0 = time.monotonic()
                text, st = a.run(rt, f, ilimit=60, **args)
                causes[what] = {"reason": st.get("reason"), "limit": st.get("limit"), "s": round(time.monotonic() - t0, 2)}
                if st.get("reason") != "limit" or st.get("limit") != cause:
                    escapes["limits"] += 1
                    out.fail(f"limits: {what} ended {st}, want reason limit with cause {cause}")
                text, st = a.run(rt, "helloworld.wasm", engine="wasmtime")
                out.check(st.get("reason") == "exited", f"limits: the node is not well after {what}: {st}")
            flood = os.path.join(root, "flood.txt")
            if os.path.exists(flood):
                figures["output_flood_bytes"] = os.path.getsize(flood)
                out.check(os.path.getsize(flood) <= 1 << 20, f"limits: the flood wrote {os.path.getsize(flood)} bytes (limit 1 MiB)")
            figures["limit_causes"] = causes
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- part 4: the broker's ACL (manage.py acl) -----------------------------------------------------

def _acl(out: Outcome, figures: dict[str, Any]) -> None:
    """Part 4: a realm under `manage.py acl`: creates that are not the orchestrator's are refused by the
    broker (and reach nobody), anonymous and wrong-password clients get nothing; the orchestrator's
    account still creates and the node runs it."""
    from testbed.acl import NOT_AUTHORIZED, AclRealm, AuthClient

    tmp = tempfile.mkdtemp(prefix="sl-chaos-sba-")
    expected = seen = 0
    try:
        realm = AclRealm(tmp, {"na": ["na"], "nb": ["nb"]})
        rt_a, rt_b = realm.runtime("na"), realm.runtime("nb")
        with realm.broker() as broker:
            cfg = realm.config("nb", broker.port, os.path.join(tmp, "nb.json"))
            node = NodeProcess(broker.port, name="nb", runtimes=["linux/min/wasmtime"], state_dir=realm.state, reg_timeout=0.3,
                               log_level="INF", extra_args=["-c", cfg], watch_auth=("cli", realm.password("cli")))
            cli = AuthClient(broker.port, "cli", realm.password("cli"))
            na = AuthClient(broker.port, "na", realm.password("na"))
            orch = AuthClient(broker.port, "orchestrator", realm.password("orchestrator"))
            try:
                node.start(timeout=90)
                for c in (cli, na, orch):
                    out.check(c.connect_rc() == 0, "acl: an account of the realm cannot connect")
                cli.subscribe_rc(f"{REALM}/proc/#")
                # control: the orchestrator's create on nb's control topic runs
                good = str(_uuid.uuid4())
                out.check(orch.publish_rc(f"{REALM}/proc/control/{rt_b}", module_create(good, rt_b, file="helloworld.wasm")) < 0x80,
                          "acl: the orchestrator's create was refused")
                try:
                    wait_until(lambda: any(t == f"{REALM}/proc/stdio/{rt_b}/{good}" for t, _ in cli.messages), 60, "the module's stdout")
                except TimeoutError:
                    out.fail("acl: the orchestrator's create did not run on nb")
                bad: list[str] = []
                for topic, body in ((f"{REALM}/proc/control/{rt_b}", "create"), (f"{REALM}/proc/control", "create"),
                                    (f"{REALM}/proc/reg/{rt_b}", "delete")):
                    for client in (na, cli) if topic.endswith(rt_b) else (na,):
                        u = str(_uuid.uuid4())
                        bad.append(u)
                        expected += 1
                        payload = module_create(u, rt_b, file="helloworld.wasm") if body == "create" else \
                            control("delete", {"type": "runtime", "uuid": rt_b, "x": u})
                        if client.publish_rc(topic, payload) == NOT_AUTHORIZED:
                            seen += 1
                for auth in (None, ("na", "guess"), ("nobody", "x")):
                    expected += 1
                    c = AuthClient(broker.port, *(auth or (None, None)))
                    try:
                        if c.connect_rc() != 0:
                            seen += 1
                    finally:
                        c.close()
                time.sleep(1.0)
                leaked = [u for u in bad if any(u.encode() in p for _, p in cli.messages)]
                if leaked:
                    seen -= len(leaked)
                    out.fail(f"acl: {len(leaked)} refused messages reached subscribers anyway")
                out.check(node.proc is not None and node.proc.poll() is None, "acl: the node died")
            finally:
                for c in (cli, na, orch):
                    c.close()
                node.stop()
        _ = rt_a
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures["acl_refusals_expected"] = expected
    figures["acl_refusals_seen"] = seen
    out.check(expected == seen, f"acl: {seen} of {expected} forbidden actions refused")


def run(size: Size) -> Outcome:
    out = Outcome("sandbox")
    missing = [m for m in ("readfile.wasm", "opener.wasm", "memhog.wasm", "spin.wasm", "helloworld.wasm") if not os.path.exists(os.path.join(MODULES, m))]
    if missing:
        out.fail(f"example modules missing ({', '.join(missing)}): run `make modules` first")
        return out
    escapes: dict[str, int] = {}
    attempts: dict[str, int] = {}
    figures: dict[str, Any] = {}
    _linux(size, out, attempts, escapes, figures)
    _runtimes(out, attempts, escapes, figures)
    _limits(out, attempts, escapes, figures)
    _acl(out, figures)
    out.figures.update(figures)
    out.figures["sandbox_attempts"] = sum(attempts.values())
    out.figures["sandbox_attempts_by_kind"] = attempts
    out.figures["sandbox_escapes_by_kind"] = escapes
    out.figures["sandbox_escapes"] = sum(escapes.values())
    return out
