"""Stopping the helper processes tests start (broker, orchestrator, sshd, ...)."""
from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop_process(proc: "subprocess.Popen[Any] | None", sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Send `sig` to a process that still runs, wait `timeout`, then SIGKILL; always reaped."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def interrupt(proc: "subprocess.Popen[str]", timeout: float = 30.0) -> tuple[str, str]:
    """Ctrl-C for a script run with piped output: SIGINT, then its output once it ended (killed and
    reaped if it did not end within `timeout`, so no process outlives the test)."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
