"""Engine cases, run in a fresh interpreter by the `isolated` fixture (never in pytest itself).

Each case runs real WebAssembly from build/modules and returns plain JSON data; the tests assert.
The wasmer cases run under Python 3.10 (`.venv310`), so this file stays 3.10 compatible and
imports engines lazily.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = os.path.join(ROOT, "build", "modules")


def _engine(name: str, **settings: Any) -> Any:
    from runtimes.engines import open_engine
    return open_engine(name, **settings)


def run(file: str, argv: Optional[List[str]] = None, env: Optional[List[str]] = None,
        dirs: Optional[List[str]] = None, memory: Optional[int] = -1, time_s: Optional[float] = None,
        cpu: Optional[Tuple[int, int]] = None, stdin_text: Optional[str] = None,
        engine: str = "wasmtime", path: Optional[str] = None) -> Dict[str, Any]:
    """Run one module to its end; stdout, stderr and the RunResult."""
    from runtimes.engines import DEFAULT_MEMORY_LIMIT, Limits, RunSpec, StdinPipe
    e = _engine(engine)
    out: List[bytes] = []
    err: List[bytes] = []
    stdin: Any = None
    if stdin_text is not None:
        stdin = StdinPipe()
        stdin.feed(stdin_text.encode())
        stdin.close()
    limits = Limits(memory_bytes=DEFAULT_MEMORY_LIMIT if memory == -1 else memory, time_s=time_s,
                    cpu_period_ns=cpu[0] if cpu else None, cpu_runtime_ns=cpu[1] if cpu else None)
    spec = RunSpec(argv=argv or [file], env=env or [], dirs=dirs or [], stdout=out.append,
                   stderr=err.append, stdin=stdin, limits=limits)
    try:
        module = e.load(path or os.path.join(MODULES, file))
    except Exception as ex:
        return {"load_error": str(ex)}
    r = e.run(module, spec)
    e.close()
    return {"result": r.to_dict(), "stdout": b"".join(out).decode("utf-8", "replace"),
            "stderr": b"".join(err).decode("utf-8", "replace")}


def stop_running(file: str = "loop.wasm", delay: float = 0.3, engine: str = "wasmtime",
                 stdin: bool = False) -> Dict[str, Any]:
    """Start a module on its thread, stop it from this thread, report how long the stop took."""
    from runtimes.engines import RunSpec, StdinPipe
    e = _engine(engine)
    module = e.load(os.path.join(MODULES, file))
    spec = RunSpec(argv=[file], stdin=StdinPipe() if stdin else None)
    run = e.start(module, spec)
    time.sleep(delay)
    t0 = time.perf_counter()
    run.stop("deleted")
    result = run.wait(30)
    latency = time.perf_counter() - t0
    e.close()
    return {"result": result.to_dict() if result else None, "stop_latency_s": latency}


def many(file: str = "loop.wasm", n: int = 128, stop_after: float = 0.5) -> Dict[str, Any]:
    """Start n modules at once on threads (one engine), then stop them all."""
    from runtimes.engines import RunSpec
    e = _engine("wasmtime")
    module = e.load(os.path.join(MODULES, file))
    outs: List[List[bytes]] = [[] for _ in range(n)]
    runs = [e.start(module, RunSpec(argv=[file, str(i)], stdout=outs[i].append)) for i in range(n)]
    time.sleep(stop_after)
    for r in runs:
        r.stop("deleted")
    results = [r.wait(60) for r in runs]
    e.close()
    return {"reasons": [r.reason if r else None for r in results],
            "stdout": [b"".join(o).decode() for o in outs]}


def cache(cache_dir: str) -> Dict[str, Any]:
    """Load the same module twice, then from a fresh engine sharing the disk cache, then a changed one."""
    e = _engine("wasmtime", cache_dir=cache_dir)
    path = os.path.join(MODULES, "helloworld.wasm")
    t0 = time.perf_counter()
    m1 = e.load(path)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    m2 = e.load(path)
    warm = time.perf_counter() - t0
    first = e.cache.stats()
    e2 = _engine("wasmtime", cache_dir=cache_dir)
    m3 = e2.load(path)
    second = e2.cache.stats()
    with open(path, "rb") as f:
        data = f.read()
    e2.load_bytes(data + b"\x00\x06\x05extra", "changed.wasm")  # a custom section: other content, other key
    third = e2.cache.stats()
    from runtimes.engines import RunSpec
    out: List[bytes] = []
    r = e2.run(m3, RunSpec(stdout=out.append))
    e.close()
    e2.close()
    return {"same_key": m1.key == m2.key == m3.key, "first": first, "second": second, "third": third,
            "cold_s": cold, "warm_s": warm, "files": sorted(os.listdir(cache_dir)),
            "disk_module_runs": r.reason == "exited" and b"".join(out) == b"Hello, World!\n"}


def load_error(path: str) -> Dict[str, Any]:
    from runtimes.engines import LoadError
    e = _engine("wasmtime")
    try:
        e.load(path)
    except LoadError as ex:
        return {"error": str(ex), "source": ex.source}
    return {"error": None}


# ---------------------------------------------------------------- channels (host API)
class Hub:
    """In-process loopback between modules' channels, with the supervisor's topic rules."""

    def __init__(self) -> None:
        self.subs: List[Tuple["HubOutlet", int, str]] = []
        self.published: List[Tuple[str, bytes]] = []
        self.lock = threading.Lock()


class HubOutlet:
    def __init__(self, hub: Hub, uuid: str, grants: Any) -> None:
        self.hub, self.uuid, self.grants = hub, uuid, grants
        self.topics: Dict[int, str] = {}
        self.channels: Any = None
        self.logs: List[Tuple[int, str]] = []

    def open(self, fd: int, flags: int, topic: str) -> None:
        from common.topics import FLAG_READ, resolve
        real = resolve(topic, flags, realm="realm", module_uuid=self.uuid, grants=self.grants)
        self.topics[fd] = real
        if flags & FLAG_READ:
            with self.hub.lock:
                self.hub.subs.append((self, fd, real))

    def close(self, fd: int) -> None:
        with self.hub.lock:
            self.hub.subs = [s for s in self.hub.subs if not (s[0] is self and s[1] == fd)]

    def publish(self, fd: int, data: bytes) -> None:
        from common.topics import matches
        topic = self.topics[fd]
        with self.hub.lock:
            self.hub.published.append((topic, data))
            targets = [(o, f) for (o, f, sub) in self.hub.subs if o is not self and matches(sub, topic)]
        for o, f in targets:
            o.channels.deliver(f, data)

    def log(self, level: int, text: str) -> None:
        self.logs.append((level, text))


def _module(hub: Hub, uuid: str, grants: Optional[List[Dict[str, str]]]) -> Tuple[HubOutlet, Any]:
    from runtimes.wasm.channels import ModuleChannels
    from common.topics import parse_grants
    outlet = HubOutlet(hub, uuid, None if grants is None else parse_grants(grants))
    outlet.channels = ModuleChannels(uuid, outlet, outlet.log)
    return outlet, outlet.channels


def _wait_for(pred: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def echo(messages: List[str]) -> Dict[str, Any]:
    """echo.wasm between a test 'client' channel set and the module, through the hub."""
    from runtimes.engines import RunSpec
    hub = Hub()
    grants = [{"path": "echo/", "mode": "rw", "topic": "realm/test/echo/"}]
    outlet, chans = _module(hub, "11111111-1111-1111-1111-111111111111", grants)
    client, cchans = _module(hub, "22222222-2222-2222-2222-222222222222", None)
    out_fd = cchans.open("realm/test/echo/out", 1)
    in_fd = cchans.open("realm/test/echo/in", 2)
    e = _engine("wasmtime")
    module = e.load(os.path.join(MODULES, "echo.wasm"))
    stdout: List[bytes] = []
    run = e.start(module, RunSpec(argv=["echo", "echo/in", "echo/out"], stdout=stdout.append, bridge=chans))
    ready = _wait_for(lambda: b"ready" in b"".join(stdout))
    got = []
    for m in messages:
        cchans.publish(in_fd, m.encode())
        r = cchans.receive(out_fd, 20.0)
        got.append(r.decode() if isinstance(r, bytes) else r)
    cchans.publish(in_fd, b"exit")
    result = run.wait(30)
    e.close()
    return {"ready": ready, "got": got, "result": result.to_dict() if result else None,
            "stdout": b"".join(stdout).decode(), "published": [t for t, _ in hub.published],
            "msgs_in": chans.msgs_in, "msgs_out": chans.msgs_out}


def pingpong(rounds: int = 50) -> Dict[str, Any]:
    """The ping-pong pair, each module on its own thread, talking through the hub."""
    from runtimes.engines import RunSpec
    hub = Hub()
    grants = [{"path": "pp/", "mode": "rw", "topic": "realm/pp/"}]
    _, a = _module(hub, "aaaaaaaa-0000-0000-0000-000000000000", grants)
    _, b = _module(hub, "bbbbbbbb-0000-0000-0000-000000000000", grants)
    e = _engine("wasmtime")
    module = e.load(os.path.join(MODULES, "pingpong.wasm"))
    oa: List[bytes] = []
    ob: List[bytes] = []
    rb = e.start(module, RunSpec(argv=["pp", "pong", "pp/ping", "pp/pong", str(rounds)], stdout=ob.append, bridge=b))
    ra = e.start(module, RunSpec(argv=["pp", "ping", "pp/pong", "pp/ping", str(rounds)], stdout=oa.append, bridge=a))
    res_a, res_b = ra.wait(60), rb.wait(60)
    e.close()
    return {"a": res_a.to_dict() if res_a else None, "b": res_b.to_dict() if res_b else None,
            "out_a": b"".join(oa).decode(), "out_b": b"".join(ob).decode()}


def grants(argv: List[str], channel_grants: List[Dict[str, str]]) -> Dict[str, Any]:
    """opener.wasm tries topics; which opens succeed depends on the grants."""
    from runtimes.engines import RunSpec
    hub = Hub()
    outlet, chans = _module(hub, "33333333-3333-3333-3333-333333333333", channel_grants)
    e = _engine("wasmtime")
    module = e.load(os.path.join(MODULES, "opener.wasm"))
    out: List[bytes] = []
    r = e.run(module, RunSpec(argv=["opener"] + argv, stdout=out.append, bridge=chans))
    e.close()
    return {"result": r.to_dict(), "stdout": b"".join(out).decode(), "logs": outlet.logs,
            "opened": sorted(outlet.topics.values())}


def whoami() -> Dict[str, Any]:
    from runtimes.engines import RunSpec
    hub = Hub()
    outlet, chans = _module(hub, "44444444-4444-4444-4444-444444444444", None)
    e = _engine("wasmtime")
    out: List[bytes] = []
    r = e.run(e.load(os.path.join(MODULES, "whoami.wasm")), RunSpec(stdout=out.append, bridge=chans))
    e.close()
    return {"result": r.to_dict(), "stdout": b"".join(out).decode(), "logs": outlet.logs}


def blocked_receive_stop() -> Dict[str, Any]:
    """echo.wasm waits in sl_receive forever; stop() must wake it."""
    from runtimes.engines import RunSpec
    hub = Hub()
    _, chans = _module(hub, "55555555-5555-5555-5555-555555555555",
                       [{"path": "echo/", "mode": "rw", "topic": "realm/echo/"}])
    e = _engine("wasmtime")
    out: List[bytes] = []
    run = e.start(e.load(os.path.join(MODULES, "echo.wasm")), RunSpec(stdout=out.append, bridge=chans))
    ready = _wait_for(lambda: b"ready" in b"".join(out))
    time.sleep(0.1)
    t0 = time.perf_counter()
    run.stop("deleted")
    r = run.wait(30)
    latency = time.perf_counter() - t0
    e.close()
    return {"ready": ready, "result": r.to_dict() if r else None, "stop_latency_s": latency}


def throttle(spin_millions: int = 150, period_ns: int = 50_000_000, runtime_ns: int = 10_000_000) -> Dict[str, Any]:
    """spin.wasm with a CPU budget: the run pauses in the epoch callback (the fallback mechanism
    forced: the kernel's would not pause in the callback)."""
    from runtimes.engines import Limits, RunControl, RunSpec
    os.environ["SL_CPU_BUDGET"] = "throttle"
    e = _engine("wasmtime")
    module = e.load(os.path.join(MODULES, "spin.wasm"))
    control = RunControl()
    r = e.run(module, RunSpec(argv=["spin", str(spin_millions)],
                              limits=Limits(cpu_period_ns=period_ns, cpu_runtime_ns=runtime_ns)), control)
    e.close()
    return {"result": r.to_dict(), "throttled_s": control.throttled_s}


def budget_share(period_ns: int, runtime_ns: int, mechanism: str = "auto", window_s: float = 1.0) -> Dict[str, Any]:
    """loop.wasm under a CPU budget: the CPU share of its thread over `window_s` (whole periods
    after a warm-up), the mechanism used and the thread's scheduling policy while it ran."""
    from runtimes.engines import Limits, RunSpec
    os.environ["SL_CPU_BUDGET"] = mechanism
    e = _engine("wasmtime")
    module = e.load(os.path.join(MODULES, "loop.wasm"))
    run = e.start(module, RunSpec(argv=["loop"], limits=Limits(cpu_period_ns=period_ns, cpu_runtime_ns=runtime_ns)))
    _wait_for(lambda: run.thread is not None and run.control.native_id is not None)
    assert run.thread is not None and run.thread.ident is not None and run.control.native_id is not None
    clock = time.pthread_getcpuclockid(run.thread.ident)
    time.sleep(max(0.1, 2 * period_ns / 1e9))
    policy = os.sched_getscheduler(run.control.native_id) & ~os.SCHED_RESET_ON_FORK
    w0, c0, p0 = time.monotonic(), time.clock_gettime(clock), run.control.throttled_s
    time.sleep(window_s)
    w1, c1, p1 = time.monotonic(), time.clock_gettime(clock), run.control.throttled_s
    run.stop("deleted")
    r = run.wait(30)
    e.close()
    # `unpaused_share`: the CPU the machine gave the thread while the budget did not pause it (the
    # load of the machine decides it); `share` can be at most the smaller of it and the budget
    return {"share": (c1 - c0) / (w1 - w0), "mechanism": run.control.budget_mechanism, "policy": policy,
            "throttled_s": run.control.throttled_s, "window_throttled_s": p1 - p0,
            "unpaused_share": (c1 - c0) / max(1e-9, (w1 - w0) - (p1 - p0)), "reason": r.reason if r else None}
