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


class Stack:
    """`tools/run_local.py` supervising (no --check), its output collected line by line."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.port, self.http = free_port(), free_port()
        self.p = subprocess.Popen([sys.executable, "tools/run_local.py", "--port", str(self.port), "--http-port",
                                   str(self.http), "--name", name, "--state-dir", str(tmp_path), "--runtime", "test/echo"],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        with self.p.stdout:  # closed at EOF
            for ln in self.p.stdout:
                self.lines.append(ln)

    def said(self, text: str) -> bool:
        return any(text in ln for ln in self.lines)

    def output(self) -> str:
        return "".join(self.lines)

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.reader.join(10)


def test_make_run_check_brings_everything_up_and_down(tmp_path: Path) -> None:
    port, http = free_port(), free_port()
    p = subprocess.run([sys.executable, "tools/run_local.py", "--check", "--port", str(port), "--http-port", str(http),
                        "--name", "runcheck", "--state-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert f"mosquitto on 127.0.0.1:{port}" in out
    assert "== it works." in out
    assert f"== collector: benchmark results into {tmp_path}/data/" in out  # campaign cells end done, not data pending
    assert "registered runtime runcheck" in out
    if "orchestrator: REST API" in out:
        assert "runcheck" in out.split("manage.py list", 1)[1]
    assert closed(port, http)  # nothing left listening
    assert (tmp_path / "orchestrator.db").exists() and (tmp_path / "runcheck.json").exists()


def test_supervises_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    st = Stack(tmp_path, "sup")
    p = st.p
    try:
        wait_until(lambda: st.said("== it works."), 120, "the stack up")
        up = next(ln for ln in st.lines if "== orchestrator: REST API" in ln)
        orch_pid = int(up.split("(pid ", 1)[1].split(",")[0])
        os.kill(orch_pid, signal.SIGKILL)  # one component dies: only it is started again
        wait_until(lambda: st.said("== orchestrator started again"), 60, "the orchestrator restarted")
        assert p.poll() is None
        wait_until(lambda: not closed(st.http), 30, "its REST port back")
        p.send_signal(signal.SIGINT)
        p.wait(60)
    finally:
        st.close()
    out = st.output()
    assert p.returncode == 0, out
    assert "orchestrator exited with code -9; starting it again in 1 s" in out
    tail = out.split("== stopping", 1)[1]
    assert "ERR" not in tail and "CRI" not in tail, tail  # a clean stop logs no error
    assert closed(st.port, st.http)


def test_sigterm_stops_in_order_and_sigkill_takes_the_components_along(tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        st = Stack(tmp_path, "term")
        try:
            wait_until(lambda: st.said("== it works."), 120, "the stack up")
            st.p.send_signal(sig)
            st.p.wait(60)
            # SIGKILL: the components see their parent die and stop themselves (PR_SET_PDEATHSIG)
            wait_until(lambda: closed(st.port, st.http), 60, "every component gone")
        finally:
            st.close()
        if sig == signal.SIGTERM:
            assert st.p.returncode == 0 and st.said("== stopping"), st.output()
