"""sd_notify datagrams on NOTIFY_SOCKET."""
from __future__ import annotations

import os
import socket

from supervisor.notify import Notifier


def test_notifier_sends_datagrams(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(str(tmp_path), "notify")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    try:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000"})
        assert n.watchdog_interval() == 1.5
        n.ready("ok")
        n.watchdog()
        assert srv.recv(100) == b"READY=1\nSTATUS=ok"
        assert srv.recv(100) == b"WATCHDOG=1"
        n.close()
        assert not Notifier({}).enabled
    finally:
        srv.close()
