"""`make run` (tools/run_local.py): broker, orchestrator and node come up on free ports and the script
shows them working (`--check`: then stops everything); without --check it supervises: a component that
dies is started again, Ctrl-C is one line and exit 0 with no error logged, and the orchestrator's store
and the node's uuids stay in the state directory across runs (issue #27)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from testbed.broker import free_port
from testbed.node import ROOT
from testbed.wait import wait_until


def closed(*ports: int) -> bool:
    for prt in ports:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", prt)) == 0:
                return False
    return True


def test_make_run_check_brings_everything_up_and_down(tmp_path: Path) -> None:
    port, http = free_port(), free_port()
    p = subprocess.run([sys.executable, "tools/run_local.py", "--check", "--port", str(port), "--http-port", str(http),
                        "--name", "runcheck", "--state-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert f"mosquitto on 127.0.0.1:{port}" in out
    assert "== it works." in out
    assert "registered runtime runcheck" in out
    if "orchestrator: REST API" in out:
        assert "runcheck" in out.split("manage.py list", 1)[1]
    assert closed(port, http)  # nothing left listening
    assert (tmp_path / "orchestrator.db").exists() and (tmp_path / "runcheck.json").exists()


def test_supervises_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port, http = free_port(), free_port()
    p = subprocess.Popen([sys.executable, "tools/run_local.py", "--port", str(port), "--http-port", str(http),
                          "--name", "sup", "--state-dir", str(tmp_path), "--runtime", "test/echo"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read() -> None:
        assert p.stdout is not None
        with p.stdout:  # closed at EOF
            for ln in p.stdout:
                lines.append(ln)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("== it works." in ln for ln in lines), 120, "the stack up")
        up = next(ln for ln in lines if "== orchestrator: REST API" in ln)
        orch_pid = int(up.split("(pid ", 1)[1].split(",")[0])
        os.kill(orch_pid, signal.SIGKILL)  # one component dies: only it is started again
        wait_until(lambda: any("== orchestrator started again" in ln for ln in lines), 60, "the orchestrator restarted")
        assert p.poll() is None
        wait_until(lambda: not closed(http), 30, "its REST port back")
        p.send_signal(signal.SIGINT)
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        reader.join(10)
    out = "".join(lines)
    assert p.returncode == 0, out
    assert "orchestrator exited with code -9; starting it again in 1 s" in out
    tail = out.split("== stopping", 1)[1]
    assert "ERR" not in tail and "CRI" not in tail, tail  # a clean stop logs no error
    assert closed(port, http)


def test_sigterm_stops_in_order_and_sigkill_takes_the_components_along(tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        port, http = free_port(), free_port()
        p = subprocess.Popen([sys.executable, "tools/run_local.py", "--port", str(port), "--http-port", str(http),
                              "--name", "term", "--state-dir", str(tmp_path), "--runtime", "test/echo"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []

        def read() -> None:
            assert p.stdout is not None
            with p.stdout:
                for ln in p.stdout:
                    lines.append(ln)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            wait_until(lambda: any("== it works." in ln for ln in lines), 120, "the stack up")
            p.send_signal(sig)
            p.wait(60)
            # SIGKILL: the components see their parent die and stop themselves (PR_SET_PDEATHSIG)
            wait_until(lambda: closed(port, http), 60, "every component gone")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            reader.join(10)
        if sig == signal.SIGTERM:
            assert p.returncode == 0 and "== stopping" in "".join(lines), "".join(lines)
