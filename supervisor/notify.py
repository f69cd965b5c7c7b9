"""systemd notification protocol (sd_notify) without libsystemd: one datagram per message.

Active only when `NOTIFY_SOCKET` is set (Type=notify units); `watchdog_interval()` is half of
`WATCHDOG_USEC` as systemd recommends.
"""
from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("mgr")


class Notifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        self.address = env.get("NOTIFY_SOCKET") or None
        self._sock: socket.socket | None = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        self._watchdog_usec = int(usec) if usec and usec.isdigit() and (not pid or pid == str(os.getpid())) else 0
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            if self.address.startswith("@"):
                self.address = "\0" + self.address[1:]  # abstract namespace

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings, or None when systemd does not watch us."""
        return self._watchdog_usec / 2e6 if self._sock is not None and self._watchdog_usec else None

    def notify(self, *fields: str) -> None:
        if self._sock is None or self.address is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as e:
            log.debug("sd_notify %s failed: %s", fields, e)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
