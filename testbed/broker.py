"""A real mosquitto broker on 127.0.0.1 and a free port, for tests and benchmarks."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

from common.broker import mosquitto_lines

from testbed.procs import stop_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")
            time.sleep(0.02)


class Mosquitto:
    """One mosquitto process; `stop()` / `start()` again on the same port (broker loss tests)."""

    def __init__(self, port: int | None = None, extra_conf: str = "", *, fleet: bool = False, persistent: bool = False) -> None:
        """`fleet`: the settings a fleet needs (common/broker.py: queue limits, $SYS counters);
        `persistent`: with persistence in its directory (sessions survive `stop()` / `start()`)."""
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if exe is None:
            raise RuntimeError("mosquitto is not installed: run `apt-get install mosquitto` (CI's .ci/run does)")
        self.exe = exe
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="sl-mosq-")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            *(mosquitto_lines(self.dir if persistent else None) if fleet or persistent else ["persistence false"]),
            "set_tcp_nodelay true",  # else Nagle + delayed ACKs add ~40 ms to small replies
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to user `mosquitto`
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n" + extra_conf + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Mosquitto":
        self.proc = subprocess.Popen([self.exe, "-c", self.conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
