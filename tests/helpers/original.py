"""The original SilverLine tools' messages, field for field as docs/compatibility.md records them
("The original CLI scripts", "The original runtimes", "Seen beside the original tools"), for the compatibility tests.

Each function returns the JSON envelope the original would publish; nothing here is ours.
"""
from __future__ import annotations

import socket
import uuid as _uuid
from typing import Any


def oid() -> str:
    return str(_uuid.uuid4())


def req(action: str, data: dict[str, Any]) -> dict[str, Any]:
    """`{"object_id": uuid4, "action": A, "type": "req", "data": {...}}` (docs/compatibility.md, "The original CLI scripts")."""
    return {"object_id": oid(), "action": action, "type": "req", "data": data}


# start.py name -> (runtime_type, apis, max_nmodules), docs/compatibility.md, "The original runtimes"
RUNTIMES: dict[str, tuple[str, list[str], int]] = {
    "benchmarking": ("benchmarking", ["wasm", "wasi", "profile:benchmarking"], 1),
    "benchmarking/seeded": ("benchmarking/seeded", ["wasm", "wasi", "profile:benchmarking-seeded"], 1),
    "benchmarking/interference": ("benchmarking/interference", ["wasm", "wasi", "profile:interference"], 1),
    "benchmarking/opcodes": ("benchmarking/opcodes", ["wasm", "wasi", "profile:opcodes"], 1),
    "linux/min/wasmer": ("linux/min/wasmer", ["wasm", "wasm:wasmer", "wasi", "stdio:in", "stdio:out"], 1),
    "linux/min/wamr": ("linux/min/wamr", ["wasm", "wasi", "stdio:out"], 1),
    "linux": ("linux", ["wasm", "wasi", "channels", "stdio:out", "profile:deployed"], 128),
    "test/reg": ("debug/none", [], 0),
}


def manager_create(mgr: str, name: str) -> dict[str, Any]:
    return req("create", {"type": "manager", "uuid": mgr, "name": name})


def manager_delete(mgr: str, name: str) -> dict[str, Any]:
    """The original manager's last will."""
    return req("delete", {"type": "manager", "uuid": mgr, "name": name})


def runtime_create(rt: str, name: str, mgr: str, kind: str, platform: dict[str, Any] | None = None) -> dict[str, Any]:
    """`create` on `{realm}/proc/reg/<rtid>` (manager/runtime.py:52-60)."""
    runtime_type, apis, max_n = RUNTIMES[kind]
    data = {"type": "runtime", "uuid": rt, "name": name, "runtime_type": runtime_type, "max_nmodules": max_n,
            "apis": list(apis), "platform": platform or {}, "metadata": {"host": socket.gethostname()}, "parent": mgr}
    if kind == "linux":
        data.update(page_size=65536, aot_target={})
    return req("create", data)


def run_args(argv: list[str] | None = None, env: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """`args` of the original `run`: argv, env, plus every option that is not None (limit 60.0 by default)."""
    args: dict[str, Any] = {"argv": list(argv or []), "env": list(env or [])}
    args.update({"limit": 60.0, **extra})
    return args


def run_create(rt: str, file: str, name: str = "module", args: dict[str, Any] | None = None) -> dict[str, Any]:
    """`manage.py run -r RT -f FILE`: one `create` naming the parent in the module."""
    return req("create", {"type": "module", "parent": rt, "uuid": oid(), "name": name, "file": file,
                          "args": args if args is not None else run_args()})


def run_batch(rt: str, files: list[str], name: str = "module", args: dict[str, Any] | None = None) -> dict[str, Any]:
    """`manage.py run -r RT -f A B` / `--copy N` / `benchmark`: one `create_batch`; the modules carry
    no parent, the batch names it once as `data.parent` (http.py:56-63,92-98)."""
    a = args if args is not None else run_args()
    return req("create_batch", {"modules": [{"type": "module", "uuid": oid(), "name": name, "file": f, "args": a}
                                            for f in files], "parent": rt})


def benchmark_args(engine: str = "iwasm-i", argv: list[str] | None = None, repeat: int = 100,
                   limit: float = 60.0) -> dict[str, Any]:
    """`args` of the original `benchmark` (tools/benchmark.py:126-132): relative `dirs: ["."]`."""
    return {"engine": engine, "argv": list(argv or []), "repeat": repeat, "limit": limit, "ilimit": None,
            "dirs": ["."], "dirmode": False, "scriptmode": False, "max_seed": 9999}


def stop(mid: str) -> dict[str, Any]:
    """`manage.py stop -n MID`: `delete` on `{realm}/proc/control` (tools/stop.py:12-32)."""
    return req("delete", {"type": "module", "uuid": mid})


def exited(mid: str) -> dict[str, Any]:
    """The original manager's `exited` on `{realm}/proc/control/<rtid>`: status is the string "exited"."""
    return req("exited", {"type": "module", "uuid": mid, "status": "exited"})


def error_report(desc: str, data: Any) -> dict[str, Any]:
    """An error report of the original orchestrator on `{realm}/proc/log/orchestrator`."""
    return {"object_id": oid(), "action": "error", "type": "resp", "data": {"desc": desc, "data": data}}


def rest_runtime(rt: str, name: str, mgr: str, kind: str, status: str = "A", children: list[dict[str, Any]] | None = None,
                 queued: list[dict[str, Any]] | None = None, platform: dict[str, Any] | None = None) -> dict[str, Any]:
    """A runtime as the original orchestrator's REST API answers (`model_to_dict`: no `type`)."""
    runtime_type, apis, max_n = RUNTIMES[kind]
    return {"uuid": rt, "name": name, "runtime_type": runtime_type, "max_nmodules": max_n, "apis": list(apis),
            "platform": platform or {}, "metadata": {"host": "orighost"}, "ka_interval_sec": 60, "status": status,
            "parent": mgr, "children": list(children or []), "queued": list(queued or [])}


def rest_module(mid: str, name: str, rt: str, file: str, status: str = "A", index: int = 1,
                args: dict[str, Any] | None = None) -> dict[str, Any]:
    """A module as the original orchestrator's REST API answers."""
    return {"index": index, "uuid": mid, "name": name, "parent": rt, "file": file, "apis": ["wasm", "wasi"],
            "args": args if args is not None else run_args(), "channels": [], "status": status}
