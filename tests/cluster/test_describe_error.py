"""cluster/ssh.py describe_error: one line per way a device can fail to answer, naming the host."""
from __future__ import annotations

import asyncio
import socket

import pytest

from cluster.ssh import describe_error, load_asyncssh


def cases() -> list[tuple[BaseException, str]]:
    asyncssh = load_asyncssh()
    return [
        (asyncio.TimeoutError(), "no answer from dev1 within 2.5s"),
        (socket.gaierror(-2, "Name or service not known"), "cannot resolve 'dev1' (Name or service not known)"),
        (ConnectionRefusedError(111, "Connection refused"), "connection refused by dev1"),
        (asyncssh.HostKeyNotVerifiable("key mismatch"),
         "host key of dev1 not verifiable (key mismatch); connect once with `ssh dev1` or fix known_hosts"),
        (asyncssh.PermissionDenied("publickey"), "permission denied by dev1 (publickey); check the key / agent / User in your SSH config"),
        (asyncssh.ConnectionLost("reset"), "disconnected by dev1: reset"),
        (asyncssh.ChannelOpenError(1, "prohibited"), "session refused by dev1: prohibited"),
        (OSError(113, "No route to host"), "dev1: No route to host"),
        (OSError("no errno"), "dev1: no errno"),
        (ValueError("odd"), "ValueError: odd"),
    ]


@pytest.mark.parametrize("i", range(10))
def test_each_failure_is_one_line_naming_the_host(i: int) -> None:
    e, text = cases()[i]
    assert describe_error(e, "dev1", 2.5) == text
