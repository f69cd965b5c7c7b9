"""The benchmark engines (benchmarking/engines/: catalog, launch, adapters, aot): names, kinds, aliases, phase
timings, AOT artifacts, and the conformance verdict gate. Real engines run real modules
(build/modules, `make modules`) in children forked or spawned by the harness."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from benchmarking.engines import aot, conformance, verdicts
from benchmarking.engines import launch as engines

ROOT = engines.PROJECT_ROOT
MODULES = os.path.join(ROOT, "build", "modules")


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    p = subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "modules")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


@pytest.fixture
def private_caches(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """AOT cache and conformance verdicts in a temporary directory (not the user's)."""
    monkeypatch.setattr(aot, "AOT_DIR", str(tmp_path / "aot-cache"))
    monkeypatch.setattr(verdicts, "VERDICTS", str(tmp_path / "conformance.json"))
    return tmp_path


def _run(name: str, module: str, argv: list[str], tmp: Any, **kw: Any) -> tuple[Any, str]:
    out = str(tmp / f"{name}.out")
    r = engines.run_once(engines.prepare(name, engines.Invocation(os.path.join(MODULES, module), argv, **kw)),
                         limit=120, stdout=out)
    with open(out) as f:
        return r, f.read()


def test_every_engine_has_a_kind_a_package_and_unique_names() -> None:
    names = engines.all_names()
    assert len(names) == len(set(names))
    for e in engines.ENGINES.values():
        assert e.kind in engines.KINDS, e
        assert e.package and e.description
        for a in e.aliases:
            assert a not in engines.ENGINES and engines.resolve(a) == e.name
    # today's names stay as aliases; Pitot's names are engines
    assert engines.resolve("wasmtime") == "wasmtime-j" and engines.resolve("wasmtime-aot") == "wasmtime-a"
    assert engines.resolve("wasmer") == "wasmer-j-cl" and engines.resolve("wasmer-sp") == "wasmer-j-sp"
    assert engines.resolve("pywasm") == "pywasm-i"
    for pitot in ("wasmtime-j", "wasmtime-a", "wasmer-j-cl", "wasmer-a-cl", "wasmer-j-ll", "wasmer-a-ll",
                  "wasmer-j-sp", "wasm3-i", "native"):
        assert pitot in names
    assert {e.kind for e in engines.ENGINES.values()} == set(engines.KINDS)


def test_make_env_installs_at_least_15_engines() -> None:
    installed = [n for n, e in engines.ENGINES.items() if e.tested and engines.availability(n, conformance=False)[0]]
    missing = {n: engines.availability(n, conformance=False)[1] for n, e in engines.ENGINES.items()
               if e.tested and n not in installed}
    assert len(installed) >= 15, f"only {len(installed)} engines installed; missing: {missing}"
    for n in installed:
        assert engines.version(n), n


def test_unknown_engine_and_alias_errors_name_them(tmp_path: Any) -> None:
    with pytest.raises(engines.EngineNotAvailable, match="engine 'nosuch' is not available on this node: unknown engine"):
        engines.prepare("nosuch", engines.Invocation(os.path.join(MODULES, "helloworld.wasm"), ["h"]))
    with pytest.raises(FileNotFoundError, match="nothere.wasm"):
        engines.prepare("wasmtime-b", engines.Invocation(str(tmp_path / "nothere.wasm"), ["h"]))
    p = engines.prepare("wasmtime", engines.Invocation(os.path.join(MODULES, "helloworld.wasm"), ["h"]))
    assert p.engine == "wasmtime-j" and p.version == engines.version("wasmtime-j")


@pytest.mark.parametrize("name", [n for n, e in engines.ENGINES.items() if e.phases])
def test_embedded_engines_report_phases(name: str, tmp_path: Any, private_caches: Any) -> None:
    if not engines.availability(name)[0]:
        pytest.fail(f"{name} is not installed: {engines.availability(name)[1]} (make env installs it)")
    r, out = _run(name, "conformance/kernels.wasm", ["kernels", "matmul", "40"], tmp_path)
    assert r.exit_code == 0 and out.startswith("matmul 40: "), (r.describe(), out)
    assert set(r.phases) == {"compile_ns", "instantiate_ns", "execute_ns"}, r.phases
    assert all(isinstance(v, int) and v > 0 for v in r.phases.values()), r.phases
    assert sum(r.phases.values()) <= r.wall_us * 1000


def test_trap_and_exit_codes_are_one_status_on_every_kind(tmp_path: Any, private_caches: Any) -> None:
    for name in ("wasmtime-cli-j", "wasmer-j-sp", "v8-b", "wasmtime-i"):
        r, out = _run(name, "trap.wasm", ["trap"], tmp_path)
        assert r.exit_code == engines.TRAP_EXIT and out.startswith("about to trap\n"), (name, r.describe(), out)
        r, out = _run(name, "conformance/wasi_misc.wasm", ["wasi_misc", "exit", "113"], tmp_path)
        assert r.exit_code == 113, name


def test_aot_artifact_in_the_original_layout_and_stale_ones_ignored(tmp_path: Any, private_caches: Any) -> None:
    wasm_dir = tmp_path / "node" / "wasm" / "suite"
    wasm_dir.mkdir(parents=True)
    mod = wasm_dir / "hello.wasm"
    shutil.copy(os.path.join(MODULES, "helloworld.wasm"), mod)
    for name in ("wasmtime-a", "wasmtime-cli-a", "wasmer-a-sp"):
        lay = aot.layout_path(name, str(mod))
        assert lay == str(tmp_path / "node" / "aot" / aot.LAYOUT_DIR[name] / "suite" / "hello.wasm")
        aot.build(name, str(mod), lay)
        assert aot.artifact(name, str(mod)) == lay
        with open(lay + ".key") as f:
            key = json.loads(f.read())
        assert key["engine"] == name and key["target"] == aot.target() and key["version"] == engines.version(name)
        r, out = _run(name, str(mod), ["hello"], tmp_path)
        assert r.exit_code == 0 and out == "Hello, World!\n"
    # the module changes: the layout's artifact is stale, a fresh one is built in the cache
    shutil.copy(os.path.join(MODULES, "args.wasm"), mod)
    fresh = aot.artifact("wasmtime-a", str(mod))
    assert fresh.startswith(aot.AOT_DIR) and fresh != aot.layout_path("wasmtime-a", str(mod))
    r, out = _run("wasmtime-a", str(mod), ["args", "3"], tmp_path)
    assert r.exit_code == 3 and "argv[1]=3" in out
    with pytest.raises(aot.AotError, match="has no AOT artifacts"):
        aot.build("wasmtime-j", str(mod), str(tmp_path / "x"))


def test_a_failed_conformance_verdict_disables_the_engine(private_caches: Any) -> None:
    assert engines.availability("native")[0]
    verdicts.save({"native": {"ok": False, "why": "kernel-crc: stdout differs", "failures": {},
                                 "version": engines.version("native")}})
    ok, why = engines.availability("native")
    assert not ok and "failed the conformance suite: kernel-crc: stdout differs" in why
    with pytest.raises(engines.EngineNotAvailable, match="conformance"):
        engines.prepare("native", engines.Invocation(os.path.join(MODULES, "helloworld.wasm"), ["h"]))
    # a verdict of another version does not count: the engine is unchecked again
    verdicts.save({"native": {"ok": False, "why": "old", "failures": {}, "version": "other"}})
    assert engines.availability("native")[0]


def test_manage_py_aot_local_builds_what_the_runtimes_find(tmp_path: Any, private_caches: Any,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from cli import aot as aot_cli

    mod = tmp_path / "node" / "wasm" / "k.wasm"
    mod.parent.mkdir(parents=True)
    shutil.copy(os.path.join(MODULES, "conformance", "kernels.wasm"), mod)
    assert aot_cli.main(["--local", "--engine", "wasmtime-a-b", "--engine", "wasmer-a-cl", str(mod)]) == 0
    out = capsys.readouterr().out
    assert "2 built, 0 failed" in out
    for name in ("wasmtime-a-b", "wasmer-a-cl"):
        lay = str(tmp_path / "node" / "aot" / aot.LAYOUT_DIR[name] / "k.wasm")
        assert lay in out and aot.artifact(name, str(mod)) == lay
    assert not os.path.exists(aot.AOT_DIR)  # nothing had to be built in the cache
    assert aot_cli.main(["--local", "--engine", "wasmtime-j", str(mod)]) == 2
    assert "not an AOT benchmark engine" in capsys.readouterr().err
    (tmp_path / "loose.wasm").write_bytes(mod.read_bytes())
    assert aot_cli.main(["--local", str(tmp_path / "loose.wasm")]) == 2
    assert "not under a `wasm/` directory" in capsys.readouterr().err
