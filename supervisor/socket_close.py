"""Closing a TCP connection without a reset: say the last word, then let the peer close first."""
from __future__ import annotations

import logging
import socket
import ssl
import time

log = logging.getLogger("mq")


def send_and_wait_for_close(sock: socket.socket, last: bytes, wait: float) -> bool:
    """Send `last`, then read (and drop) what the peer still sends until it closes its side, at most
    `wait` seconds; True when it did. Closing ours only after that means the kernel sends no reset
    that could make the peer drop what we said last."""
    try:
        sock.settimeout(wait)
        sock.sendall(last)
    except OSError as e:
        log.debug("last packet not sent: %s", e)
        return False
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        try:
            sock.settimeout(left)
            if not sock.recv(65536):
                return True
        except (socket.timeout, ssl.SSLWantReadError):
            break
        except OSError:
            return True  # the connection is gone either way
    return False
