"""systemd's notify protocol against a real notify socket (an AF_UNIX datagram socket bound here,
as systemd binds one), with a real node.

Regression: READY=1 came only after the broker connected, so with the broker down at boot
`TimeoutStartSec` killed and restarted the node every minute, and the watchdog was not fed meanwhile.
"""
from __future__ import annotations

import os
import socket
import tempfile
import time
from typing import Iterator

import pytest

from testbed.broker import Mosquitto, free_port
from testbed.node import NodeProcess


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    d = tempfile.mkdtemp(prefix="sl-notify-")
    path = os.path.join(d, "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(0.5)
    try:
        yield srv, path
    finally:
        srv.close()
        os.unlink(path)
        os.rmdir(d)


def collect(srv: socket.socket, seconds: float, got: list[str]) -> list[str]:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            got += srv.recv(4096).decode().split("\n")
        except socket.timeout:
            pass
    return got


def test_ready_status_and_watchdog_while_the_broker_is_down(notify_socket: tuple[socket.socket, str]) -> None:
    srv, path = notify_socket
    port = free_port()  # nothing listens yet: the broker is down at boot
    n = NodeProcess(port, name="boot", runtimes=["test/echo"], env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    got: list[str] = []
    try:
        n.start(wait=False)
        collect(srv, 4.0, got)
        assert "READY=1" in got, got
        assert got.count("WATCHDOG=1") >= 4, got  # every 0.5 s, broker or not
        assert any(x.startswith("STATUS=waiting for MQTT broker 127.0.0.1:") for x in got), got
        with Mosquitto(port=port):
            got.clear()
            collect(srv, 5.0, got)
            statuses = [x for x in got if x.startswith("STATUS=")]
            assert statuses and not statuses[-1].startswith("STATUS=waiting for MQTT broker"), statuses
            assert "waiting for the orchestrator" in statuses[-1] or "runtimes" in statuses[-1], statuses
            assert got.count("WATCHDOG=1") >= 4
            assert n.stop() == 0
            collect(srv, 1.0, got)
            assert "STOPPING=1" in got
    finally:
        n.stop()
