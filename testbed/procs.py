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
