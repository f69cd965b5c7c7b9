"""Engines run real WebAssembly (build/modules) directly, in a fresh interpreter per case (see
conftest.py for why wasm never runs inside pytest itself)."""
from __future__ import annotations

import os
import subprocess
from typing import Any, Callable

import pytest

from common.python310 import find_wasmer_python
from tests.runtimes.conftest import ROOT

Isolated = Callable[..., Any]


def test_hello_stdout_and_exit_code(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("run", file="helloworld.wasm")
    assert r["stdout"] == "Hello, World!\n"
    assert r["result"]["reason"] == "exited" and r["result"]["code"] == 0
    wat = isolated("run", file="hello.wat")
    assert wat["stdout"] == "Hello, World!\n" and wat["result"]["reason"] == "exited"


def test_argv_env_and_nonzero_exit(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("run", file="args.wasm", argv=["args", "7", "two words"], env=["A=1", "EMPTY=", "X=a=b"])
    assert r["stdout"].splitlines() == ["argv[0]=args", "argv[1]=7", "argv[2]=two words",
                                        "env A=1", "env EMPTY=", "env X=a=b"]
    assert r["result"] == {**r["result"], "reason": "exited", "code": 7}


def test_bad_env_entry_is_an_error_naming_it(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("run", file="args.wasm", env=["NOEQUALS"])
    assert r["result"]["reason"] == "error" and "NOEQUALS" in r["result"]["message"]


def test_preopened_dir_read_and_write(modules_dir: str, isolated: Isolated, tmp_path: Any) -> None:
    (tmp_path / "in.txt").write_text("from the host\n")
    r = isolated("run", file="readfile.wasm", argv=["readfile", f"{tmp_path}/in.txt"], dirs=[str(tmp_path)])
    assert r["stdout"] == "from the host\n" and r["result"]["code"] == 0
    w = isolated("run", file="readfile.wasm", argv=["readfile", f"{tmp_path}/out.txt", "written"], dirs=[str(tmp_path)])
    assert w["stdout"] == "written" and (tmp_path / "out.txt").read_text() == "written"


def test_file_outside_preopened_dirs_is_not_visible(modules_dir: str, isolated: Isolated, tmp_path: Any) -> None:
    (tmp_path / "secret.txt").write_text("no")
    r = isolated("run", file="readfile.wasm", argv=["readfile", f"{tmp_path}/secret.txt"])
    assert r["result"]["code"] == 1 and "cannot open" in r["stdout"] and "no" not in r["stdout"].split(":")[-1]


def test_missing_dir_is_an_error_naming_it(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("run", file="helloworld.wasm", dirs=["/nonexistent/dir"])
    assert r["result"]["reason"] == "error" and "/nonexistent/dir" in r["result"]["message"]


def test_trap_reports_its_cause(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("run", file="trap.wasm")
    assert r["stdout"] == "about to trap\n"
    assert r["result"]["reason"] == "trap"
    assert "unreachable" in r["result"]["message"] and "backtrace" not in r["result"]["message"]


def test_infinite_loop_stopped_from_another_thread(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("stop_running", file="loop.wasm")
    assert r["result"]["reason"] == "interrupted" and "deleted" in r["result"]["message"]
    wat = isolated("stop_running", file="loop.wat")
    assert wat["result"]["reason"] == "interrupted"


def test_stop_wakes_a_module_blocked_on_stdin(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("stop_running", file="cat.wasm", stdin=True)
    assert r["result"]["reason"] == "interrupted"


def test_stop_wakes_a_module_blocked_in_receive(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("blocked_receive_stop")
    assert r["ready"] and r["result"]["reason"] == "interrupted"


def test_many_modules_on_threads_all_stop(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("many", file="loop.wasm", n=16)
    assert r["reasons"] == ["interrupted"] * 16
    assert r["stdout"] == ["looping\n"] * 16


def test_time_limit(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("run", file="loop.wat", time_s=0.2)
    assert r["result"]["reason"] == "limit" and "time limit" in r["result"]["message"]


def test_memory_hog_stopped_at_its_limit(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("run", file="memhog.wasm", memory=16 << 20)
    assert r["result"]["reason"] == "limit", r
    assert "memory limit of 16777216 bytes" in r["result"]["message"]
    assert r["result"]["memory_bytes"] <= 16 << 20
    assert "allocation failed after" in r["stdout"]
    small = isolated("run", file="memhog.wasm", argv=["memhog", "4"], memory=16 << 20)
    assert small["result"]["reason"] == "exited" and small["stdout"].startswith("allocated 4 MiB")


def test_cpu_budget_throttles(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("throttle", spin_millions=100, period_ns=50_000_000, runtime_ns=10_000_000)
    assert r["result"]["reason"] == "exited" and r["throttled_s"] > 0


def test_stdin_pipe(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("run", file="cat.wasm", stdin_text="line one\nline two\n")
    assert r["stdout"] == "line one\nline two\n" and r["result"]["reason"] == "exited"


def test_compile_cache_hits_in_memory_and_on_disk(modules_dir: str, isolated: Isolated, tmp_path: Any) -> None:
    r = isolated("cache", cache_dir=str(tmp_path / "cache"))
    assert r["same_key"]
    assert r["first"] == {"hits": 1, "disk_hits": 0, "misses": 1, "entries": 1}
    assert r["second"]["disk_hits"] == 1 and r["second"]["misses"] == 0
    assert r["third"]["misses"] == 1  # other bytes: another key
    assert len(r["files"]) == 2 and all(f.endswith(".cwasm") for f in r["files"])
    assert r["disk_module_runs"]


def test_load_errors_name_the_file(modules_dir: str, isolated: Isolated, tmp_path: Any) -> None:
    missing = isolated("load_error", path=str(tmp_path / "nope.wasm"))
    assert "nope.wasm" in missing["error"] and "No such file" in missing["error"]
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0garbage")
    invalid = isolated("load_error", path=str(bad))
    assert "bad.wasm" in invalid["error"]


def test_host_api_echo_over_channels(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("echo", messages=["one", "two", "x" * 1000])
    assert r["ready"] and r["got"] == ["one", "two", "x" * 1000]
    assert r["result"]["reason"] == "exited" and r["stdout"] == "ready\necho 3\n".replace("echo 3", "echoed 3")
    assert "realm/test/echo/out" in r["published"]


def test_host_api_ping_pong_pair(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("pingpong", rounds=30)
    assert r["out_a"].endswith("done 30\n") and r["out_b"].endswith("done 30\n")
    assert r["a"]["reason"] == r["b"]["reason"] == "exited"


def test_host_api_grants(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("grants", argv=["x/a", "r", "$SL/mine", "w", "y/b", "r", "x/a", "w"],
                 channel_grants=[{"path": "x/", "mode": "r", "topic": "realm/xx/"}])
    lines = r["stdout"].splitlines()
    assert lines[0] == "open x/a r -> 0"
    assert lines[1] == "open $SL/mine w -> 1"
    assert lines[2] == "open y/b r -> -2"        # not granted: SL_EACCES, no crash
    assert lines[3] == "open x/a w -> -2"        # granted read-only
    assert r["opened"] == ["realm/mine/33333333-3333-3333-3333-333333333333", "realm/xx/a"]
    assert any("not granted" in text for _, text in r["logs"])
    assert r["result"]["reason"] == "exited"


def test_host_api_uuid_and_log(modules_dir: str, isolated: Isolated) -> None:
    r = isolated("whoami")
    assert r["stdout"] == "uuid=44444444-4444-4444-4444-444444444444 (36)\n"
    assert r["logs"] == [[20, "hello from whoami"]]


def test_run_command_line(modules_dir: str) -> None:
    """python -m runtimes.engines.run: the spawn-per-module baseline of bench/modules.py."""
    p = subprocess.run([os.path.join(ROOT, ".venv", "bin", "python"), "-m", "runtimes.engines.run", "--json",
                        os.path.join(modules_dir, "args.wasm"), "3"], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert p.returncode == 3 and "argv[1]=3" in p.stdout and '"reason": "exited"' in p.stderr.splitlines()[-1]


WASMER_PY, WASMER_WHY = find_wasmer_python()
needs_wasmer = pytest.mark.skipif(WASMER_PY is None, reason=f"no wasmer-capable Python: {WASMER_WHY}")


@needs_wasmer
def test_wasmer_engine_under_python310(modules_dir: str, isolated: Isolated, tmp_path: Any) -> None:
    hello = isolated("run", python=WASMER_PY, engine="wasmer", file="helloworld.wasm")
    assert hello["stdout"] == "Hello, World!\n" and hello["result"]["reason"] == "exited"
    args = isolated("run", python=WASMER_PY, engine="wasmer", file="args.wasm", argv=["a", "5"], env=["K=V"])
    assert args["stdout"] == "argv[0]=a\nargv[1]=5\nenv K=V\n"
    assert args["result"]["code"] == 5  # proc_exit(5) raised RuntimeError inside wasmer
    trap = isolated("run", python=WASMER_PY, engine="wasmer", file="trap.wasm")
    assert trap["result"]["reason"] == "trap" and "unreachable" in trap["result"]["message"]
    (tmp_path / "f.txt").write_text("wasmer reads dirs\n")
    rd = isolated("run", python=WASMER_PY, engine="wasmer", file="readfile.wasm",
                  argv=["r", f"{tmp_path}/f.txt"], dirs=[str(tmp_path)])
    assert rd["stdout"] == "wasmer reads dirs\n"
    cat = isolated("run", python=WASMER_PY, engine="wasmer", file="cat.wasm", stdin_text="in\n")
    assert cat["stdout"] == "in\n"
    loop = isolated("stop_running", python=WASMER_PY, engine="wasmer", file="loop.wat")
    assert loop["result"]["reason"] == "interrupted"
    timed = isolated("run", python=WASMER_PY, engine="wasmer", file="loop.wasm", time_s=0.3)
    assert timed["result"]["reason"] == "limit"
