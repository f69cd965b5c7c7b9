"""Least privilege on the benchmarking runtimes, through the real supervisor, broker and runs:
the file policy for every path field (runtimes/files.py) and the native/command-line engine gate
(benchmarking/engines/gate.py)."""
from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from benchmarking.engines import launch as engines
from benchmarking import layouts
from testbed.bench_modules import node_args
from tests.runtimes.benchmarking.test_runtimes import REALM, create, exited, profile
from testbed.node import running_node

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
KINDS = ["benchmarking", "benchmarking/seeded", "benchmarking/interference", "benchmarking/opcodes"]


@pytest.fixture
def layout(tmp_path: Any, wasm: dict[str, str]) -> dict[str, Any]:
    """A module root laid out like the original's benchmark tree (`wasm/...`) and a place outside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "wasm" / "suite").mkdir(parents=True)
    (root / "inputs").mkdir()
    (root / "inputs" / "a").write_text("a")
    (root / "args.py").write_text("print(1, 'quiet')\n")
    outside.mkdir()
    (outside / "inputs").mkdir()
    (outside / "inputs" / "a").write_text("a")
    (outside / "args.py").write_text("print(1)\n")
    for name in ("spin", "kernels"):
        shutil.copy(wasm[name], root / "wasm" / "suite" / f"{name}.wasm")
        shutil.copy(wasm[name], outside / f"{name}.wasm")
    shutil.copy(os.path.join(os.path.dirname(wasm["spin"]), "spin"), outside / "spin")  # a native build, outside
    shutil.copy(os.path.join(os.path.dirname(wasm["spin"]), "spin"), root / "wasm" / "suite" / "spin")
    os.symlink(outside / "spin.wasm", root / "wasm" / "sneaky.wasm")
    return {"root": root, "outside": outside, "tmp": tmp_path}


def _error(probe: Any, rt: str, uuid: str) -> str:
    st = exited(probe, rt, uuid)["status"]
    assert st["reason"] == "error", st
    return str(st["error"])


def test_every_path_field_goes_through_the_module_roots_on_every_benchmarking_runtime(broker, probe, layout) -> None:  # type: ignore[no-untyped-def]
    root, outside = layout["root"], layout["outside"]
    probe.subscribe(f"{REALM}/proc/#")
    with running_node(broker, name="pol", runtimes=KINDS, extra_args=node_args(layout["tmp"], [str(root)])) as node:
        rts = {n.rsplit(".", 1)[-1]: u for n, u in node.runtime_uuids.items()}
        bench, seeded, inter, ops = rts["benchmarking"], rts["seeded"], rts["interference"], rts["opcodes"]
        # relative `wasm/...` files and `dirs: ["."]`, as the original's benchmark creates send them
        create(probe, bench, "ok-rel", "wasm/suite/spin.wasm", argv=["1"], repeat=2, engine="wasmtime-aot", dirs=["."],
               stdout="out.txt")
        assert exited(probe, bench, "ok-rel")["status"] == {"reason": "exited", "code": 0, "error": None}
        assert len(layouts.decode("benchmarking", profile(probe, "benchmarking", "ok-rel"))["wall_us"]) == 2
        assert (root / "out.txt").exists()
        create(probe, ops, "ok-ops", "wasm/suite/kernels.wasm", argv=["2"], dirs=["."])
        assert exited(probe, ops, "ok-ops")["status"]["reason"] == "exited"
        create(probe, seeded, "ok-seeded", "wasm/suite/spin.wasm", repeat=2, dirmode="inputs", engine="wasmtime-aot")
        assert exited(probe, seeded, "ok-seeded")["status"]["reason"] == "exited"
        # the module file: outside (absolute, `..`, a symlink in the root pointing out) on each kind
        msg = "is outside the module roots"
        bad_files = [str(outside / "spin.wasm"), "../outside/spin.wasm", "wasm/sneaky.wasm"]
        for kind, rt in rts.items():
            for i, f in enumerate(bad_files):
                u = f"file-{kind}-{i}"
                create(probe, rt, u, f if kind != "interference" else f"wasm/suite/spin.wasm:{f}", argv=["1"])
                err = _error(probe, rt, u)
                assert msg in err and "module file" in err and "refused" in err, (kind, f, err)
        # every other path field, on the runtimes that take it
        fields: list[tuple[str, str, dict[str, Any]]] = [
            (bench, "dirs", {"dirs": [str(outside)]}), (bench, "dirs", {"dirs": [".."]}),
            (bench, "stdout", {"stdout": str(outside / "out.txt")}), (bench, "stdout", {"stdout": "../outside/o.txt"}),
            (seeded, "dirmode", {"dirmode": str(outside / "inputs")}), (seeded, "scriptmode", {"scriptmode": str(outside / "args.py")}),
            (inter, "dirs", {"dirs": [str(outside)]}), (ops, "dirs", {"dirs": ["../outside"]}),
        ]
        for i, (rt, field, args) in enumerate(fields):
            u = f"field-{i}"
            create(probe, rt, u, "wasm/suite/spin.wasm", argv=["1"], **args)
            err = _error(probe, rt, u)
            assert f"args.{field}" in err and msg in err, (field, err)
        assert not (outside / "out.txt").exists() and not (outside / "o.txt").exists()


def test_native_and_command_line_engines_are_opt_in(broker, probe, layout) -> None:  # type: ignore[no-untyped-def]
    root, outside = layout["root"], layout["outside"]
    marker = layout["tmp"] / "PWNED"
    probe.subscribe(f"{REALM}/proc/#")
    # off by default: the issue's `-f /usr/bin/touch --argv PWNED --engine native` creates nothing
    with running_node(broker, name="off", runtimes=["benchmarking"], extra_args=node_args(layout["tmp"], [str(root)])) as node:
        rt = node.runtime_uuid()
        reg = [r for r in node.registrations if r["data"].get("type") == "runtime"][0]["data"]
        assert "native" not in reg["metadata"]["engines"] and "wasmtime" in reg["metadata"]["engines"]
        # a command-line engine and engines whose WASI is no sandbox, as far as they are installed here
        others = [e for e in ("wasmtime-cli-j", "v8-j", "wasmer", "pywasm") if engines.availability(e)[0]]
        for i, (f, eng) in enumerate([("/usr/bin/touch", "native"), ("wasm/suite/spin.wasm", "native"),
                                      ("wasm/suite/spin.wasm", ["wasmtime", "native"])] +
                                     [("wasm/suite/spin.wasm", e) for e in others]):
            create(probe, rt, f"off-{i}", f, argv=[str(marker)], engine=eng)
            err = _error(probe, rt, f"off-{i}")
            assert "is off on this node" in err and "enable_engines" in err, err
        assert not marker.exists()
    # enabled: runs, but only executables inside the roots
    with running_node(broker, name="on", runtimes=["benchmarking"],
                      extra_args=node_args(layout["tmp"], [str(root)], ["native"])) as node:
        rt = node.runtime_uuid()
        reg = [r for r in node.registrations if r["data"].get("type") == "runtime"][0]["data"]
        assert "native" in reg["metadata"]["engines"]
        create(probe, rt, "on-ok", "wasm/suite/spin.wasm", argv=["1"], engine="native", repeat=2)
        assert exited(probe, rt, "on-ok")["status"] == {"reason": "exited", "code": 0, "error": None}
        create(probe, rt, "on-touch", "/usr/bin/touch", argv=[str(marker)], engine="native")
        assert "outside the module roots" in _error(probe, rt, "on-touch")
        os.symlink(outside / "spin", root / "wasm" / "suite" / "linked")
        (root / "wasm" / "suite" / "linked.wasm").write_bytes((root / "wasm" / "suite" / "spin.wasm").read_bytes())
        create(probe, rt, "on-link", "wasm/suite/linked.wasm", argv=["1"], engine="native")
        err = _error(probe, rt, "on-link")
        assert "native executable" in err and "outside the module roots" in err, err
        assert not marker.exists()


def test_a_bad_enable_engines_setting_stops_the_node_at_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    from testbed.node import START

    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"runtimes": {"benchmarking": {"enable_engines": ["natvie"]}}}))
    r = subprocess.run([sys.executable, START, "-n", "x", "-r", "benchmarking/if", "-c", str(cfg), "--mqtt", "127.0.0.1:1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "enable_engines" in r.stderr and "'natvie'" in r.stderr, r.stderr


def test_the_original_benchmark_creates_run(broker, probe, layout) -> None:  # type: ignore[no-untyped-def]
    """docs/compatibility.md, "Seen beside the original tools": `args.dirs: ["."]`, a relative `wasm/...` file, and
    `dirmode`/`scriptmode` sent as `false`, exactly as the original's benchmark script sends them."""
    from tests.helpers.original import benchmark_args

    root = layout["root"]
    probe.subscribe(f"{REALM}/proc/#")
    with running_node(broker, name="orig", runtimes=["benchmarking", "benchmarking/seeded"],
                      extra_args=node_args(layout["tmp"], [str(root)])) as node:
        rts = {n.rsplit(".", 1)[-1]: u for n, u in node.runtime_uuids.items()}
        for kind, rt in rts.items():
            args = benchmark_args(engine="wasmtime-j", argv=["1"], repeat=2, limit=60.0)
            assert args["dirs"] == ["."] and args["dirmode"] is False
            u = f"orig-{kind}"
            probe.publish(f"{REALM}/proc/control/{rt}", {"object_id": u, "action": "create", "type": "req", "data": {
                "type": "module", "uuid": u, "name": "spin.wasmtime-j", "parent": rt, "file": "wasm/suite/spin.wasm",
                "args": args}})
            st = exited(probe, rt, u)
            assert st["status"]["reason"] == "exited" and st["status"]["code"] == 0, (kind, st)
        # the module sees the root as `.`: a relative path inside it opens
        from tests.runtimes.benchmarking.test_runtimes import create
        shutil.copy(os.path.join(ROOT, "build", "modules", "readfile.wasm"), root / "wasm" / "suite" / "readfile.wasm")
        create(probe, rts["benchmarking"], "orig-read", "wasm/suite/readfile.wasm", argv=["inputs/a"], dirs=["."],
               engine="wasmtime-j", stdout="read.txt")
        assert exited(probe, rts["benchmarking"], "orig-read")["status"]["code"] == 0
        assert (root / "read.txt").read_text() == "a"
