"""Our WASI layer in C for wasm2c (benchmarking/engines/wasi/wasi.c), on real modules built by
wasm2c + gcc: confinement of preopened dirs, WASI errno values as the module sees them (strerror
of wasi-libc), argv/env/exit codes, traps, and a clear error for a preopen that does not exist."""
from __future__ import annotations

import os
from typing import Any

import pytest

from benchmarking.engines import aot
from benchmarking.engines import launch as engines

MODULES = os.path.join(engines.PROJECT_ROOT, "build", "modules")


def run(module: str, argv: list[str], tmp: Any, dirs: list[str] | None = None,
        env: dict[str, str] | None = None) -> tuple[Any, str]:
    out = tmp / "out.txt"
    if out.exists():
        out.unlink()
    prep = engines.prepare("wasm2c-a", engines.Invocation(os.path.join(MODULES, module), argv, env or {}, dirs or []))
    r = engines.run_once(prep, limit=60, stdout=str(out))
    return r, out.read_text()


def test_preopened_dir_confines_dotdot_and_symlinks(tmp_path: Any) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (tmp_path / "secret.txt").write_text("secret\n")
    os.symlink(str(tmp_path / "secret.txt"), d / "link")
    r, out = run("conformance/wasi_fs.wasm", ["wasi_fs", str(d), "escape"], tmp_path, dirs=[str(d)])
    assert r.exit_code == 0 and out == "dotdot: refused\nsymlink: refused\ncreate outside: refused\n"
    assert not (tmp_path / "created.txt").exists()
    # a relative symlink that stays inside is followed
    (d / "real.txt").write_text("inside\n")
    os.symlink("real.txt", d / "rel")
    r, out = run("readfile.wasm", ["readfile", f"{d}/rel"], tmp_path, dirs=[str(d)])
    assert r.exit_code == 0 and out == "inside\n"


def test_errors_reach_the_module_as_wasi_errno(tmp_path: Any) -> None:
    d = tmp_path / "d"
    d.mkdir()
    r, out = run("readfile.wasm", ["readfile", f"{d}/missing.txt"], tmp_path, dirs=[str(d)])
    assert r.exit_code == 1 and out == f"cannot open {d}/missing.txt: No such file or directory\n"
    # no preopen at all: the path is not reachable (wasi-libc finds no dir for it)
    r, out = run("readfile.wasm", ["readfile", f"{d}/missing.txt"], tmp_path)
    assert r.exit_code == 1 and "cannot open" in out


def test_argv_env_exit_code_and_trap(tmp_path: Any) -> None:
    r, out = run("args.wasm", ["args", "9", "x y"], tmp_path, env={"A": "1", "B": "="})
    assert r.exit_code == 9 and out == "argv[0]=args\nargv[1]=9\nargv[2]=x y\nenv A=1\nenv B==\n"
    r, out = run("trap.wasm", ["trap"], tmp_path)
    assert r.exit_code == engines.TRAP_EXIT and out == "about to trap\nwasm2c trap: Unreachable instruction executed\n"


def test_missing_preopen_is_a_clear_error(tmp_path: Any) -> None:
    exe = aot.artifact("wasm2c-a", os.path.join(MODULES, "helloworld.wasm"))
    import subprocess
    p = subprocess.run([exe], env={"SLW_NDIRS": "1", "SLW_DIR0": str(tmp_path / "nope")}, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 125 and f"cannot open preopened dir {tmp_path / 'nope'}" in p.stderr


def test_build_failure_names_the_tool_and_module(tmp_path: Any) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0\x01\xff")
    with pytest.raises(aot.AotError, match="wasm2c on .*bad.wasm failed"):
        aot.build("wasm2c-a", str(bad), str(tmp_path / "bad.exe"))
