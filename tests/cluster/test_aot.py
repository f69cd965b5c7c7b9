"""aot: per-target artifacts that a wasmtime engine with the runtime's settings loads and runs;
targets and engines that cannot be compiled here are reported, not crashed on."""
from __future__ import annotations

import shutil
from pathlib import Path

import wasmtime

from cluster.aot import CANNOT
from cli import aot
from tests.cluster.conftest import write_manifest

WAT = '(module (func (export "answer") (result i32) i32.const 42))'


def run_aot(tmp_path: Path, capsys, *args: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    rc = aot.main(["-m", write_manifest(tmp_path / "m.tsv"), "-o", str(tmp_path / "out"), *args])
    return rc, capsys.readouterr().out


def test_aot_per_target_artifacts_load_with_runtime_settings(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "answer.wat"
    src.write_text(WAT)
    rc, out = run_aot(tmp_path, capsys, str(src))
    assert rc == 0, out
    art = tmp_path / "out" / "x86-64" / "wasmtime" / "answer.cwasm"
    assert f"{art} (" in out and "for dev1, dev2" in out

    config = wasmtime.Config()
    config.epoch_interruption = True  # as runtimes/engines/wasmtime_engine.py
    config.cranelift_opt_level = "speed"
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1000)
    inst = wasmtime.Instance(store, wasmtime.Module.deserialize_file(engine, str(art)), [])
    assert inst.exports(store)["answer"](store) == 42
    try:  # an engine with other settings refuses it: that is why the settings must match
        wasmtime.Module.deserialize_file(wasmtime.Engine(), str(art))
        raise AssertionError("a default engine accepted an epoch-interruption artifact")
    except wasmtime.WasmtimeError:
        pass

    # dev3 is aarch64: the wasmtime wheel cannot cross-compile; the CLI could
    a72 = [ln for ln in out.splitlines() if ln.startswith("cortex-a72") and "wasmtime" in ln]
    if shutil.which("wasmtime"):
        assert (tmp_path / "out" / "cortex-a72" / "wasmtime" / "answer.cwasm").exists()
    else:
        assert len(a72) == 1 and "cannot:" in a72[0] and "aarch64-unknown-linux-gnu" in a72[0]
    wasmer = [ln for ln in out.splitlines() if " wasmer " in ln]
    assert wasmer and (shutil.which("wasmer") or all("cannot: the wasmer CLI is not on PATH" in ln for ln in wasmer))


def test_aot_reports_broken_modules_and_engines_that_cannot(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    good, bad = tmp_path / "good.wat", tmp_path / "bad.wasm"
    good.write_text(WAT)
    bad.write_bytes(b"\0asm\x01\0\0\0\xff")
    rc, out = run_aot(tmp_path, capsys, "-d", "dev1", "--engine", "wasmtime", "--engine", "wasm3", str(good), str(bad))
    assert rc == 1
    assert "bad.wasm" in out and "FAILED: wasmtime:" in out
    assert f"cannot: {CANNOT['wasm3']}" in out
    assert "1 compiled, 1 failed" in out


def test_aot_missing_file(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    rc = aot.main(["-m", write_manifest(tmp_path / "m.tsv"), str(tmp_path / "nope.wasm")])
    assert rc == 2 and "no such file" in capsys.readouterr().err
