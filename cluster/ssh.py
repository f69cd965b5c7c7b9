"""SSH connections to manifest devices with asyncssh.

asyncssh: maintained, pure asyncio (one event loop fans out to hundreds of hosts without a
thread per host), reads OpenSSH client config files (Host/HostName/Port/User/IdentityFile/
UserKnownHostsFile/ProxyJump) and uses the agent from `SSH_AUTH_SOCK`, and has SFTP built in.
(Paramiko needs a thread per host and ignores most of ~/.ssh/config; fabric sits on paramiko.)
By default the user's ~/.ssh/config and ~/.ssh/known_hosts apply, as for `ssh`.
"""
from __future__ import annotations

import asyncio
import getpass
import os
import shlex
import socket
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from common.manifest import Device

if TYPE_CHECKING:
    from asyncssh import SSHClientConnection

_asyncssh: ModuleType | None = None


def load_asyncssh() -> ModuleType:
    """asyncssh, imported on first use: the only place that imports it.

    Only the code that connects calls this, so `manage.py -h`, every script's `-h` and the scripts
    that never connect do not pay for the import. asyncssh's own modules `asyncssh.crypto.misc`
    and `asyncssh.crypto.dsa` name cryptography's DSA classes at import time, and cryptography
    (>= 51) warns about DSA on each such name: five CryptographyDeprecationWarnings, 10 lines on the
    user's terminal before any output of ours. We never use DSA (asyncssh leaves ssh-dss off), so
    these warnings, from those modules during this import, are ignored; any other warning, and a
    DSA key actually used later, still shows.
    """
    global _asyncssh
    if _asyncssh is None:
        from cryptography.utils import CryptographyDeprecationWarning

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning,
                                    module=r"asyncssh\.crypto\.(misc|dsa)\Z")
            import asyncssh
        _asyncssh = asyncssh
    return _asyncssh


@dataclass
class SshOptions:
    """How to reach devices; empty values leave the decision to the SSH config."""

    ssh_config: str | None = None  # like `ssh -F FILE`; None: ~/.ssh/config if present
    username: str = ""  # config.json `username`; overrides the SSH config's User when set
    domain: str = ""  # config.json `domain`: device `pi4` -> host `pi4.<domain>`
    connect_timeout: float = 10.0
    command_timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more asyncssh.connect() keywords (tests)

    def connect_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"connect_timeout": self.connect_timeout}
        if self.ssh_config:
            kw["config"] = [os.path.expanduser(self.ssh_config)]
        if self.username:
            kw["username"] = self.username
        kw.update(self.extra)
        return kw


@dataclass(frozen=True)
class Endpoint:
    """Where the SSH options send a device: the address `ssh` would connect to."""

    host: str
    port: int
    user: str


def resolve(device: Device, opts: SshOptions) -> Endpoint:
    """HostName, Port and User of `device` as `connect()` sees them (SSH config file, then the
    config's `username`), so every tool that looks at a device looks at the same address."""
    load_asyncssh()
    from asyncssh.config import SSHClientConfig

    name = device.fullname(opts.domain)
    path = os.path.expanduser(opts.ssh_config) if opts.ssh_config else os.path.expanduser("~/.ssh/config")
    paths = [path] if os.path.exists(path) else []
    # `()` = "not given on the command line": the config file decides (asyncssh's own convention)
    cfg = SSHClientConfig.load(None, paths, False, False, False, getpass.getuser(), opts.username or (), name, ())
    port = cfg.get("Port")
    user = cfg.get("User")
    return Endpoint(str(cfg.get("Hostname") or name), int(port) if isinstance(port, int) else 22,
                    str(user) if user else opts.username or getpass.getuser())


async def connect(device: Device, opts: SshOptions) -> SSHClientConnection:
    """Open a connection to `device` (its full name; the SSH config may map it further)."""
    conn: SSHClientConnection = await load_asyncssh().connect(device.fullname(opts.domain), **opts.connect_kwargs())
    return conn


def describe_error(e: BaseException, host: str, timeout: float) -> str:
    """One line that says why `host` could not be reached or the session failed."""
    asyncssh = load_asyncssh()
    why: list[tuple[Any, str]] = [  # the first kind `e` is decides
        (asyncio.TimeoutError, "no answer from {host} within {timeout:g}s"),
        (socket.gaierror, "cannot resolve {host!r} ({strerror})"),
        (ConnectionRefusedError, "connection refused by {host}"),
        (asyncssh.HostKeyNotVerifiable,
         "host key of {host} not verifiable ({reason}); connect once with `ssh {host}` or fix known_hosts"),
        (asyncssh.PermissionDenied, "permission denied by {host} ({reason}); check the key / agent / User in your SSH config"),
        (asyncssh.DisconnectError, "disconnected by {host}: {reason}"),
        (asyncssh.ChannelOpenError, "session refused by {host}: {reason}"),
        (OSError, "{host}: {oserror}"),
    ]
    for kind, text in why:
        if isinstance(e, kind):
            strerror = getattr(e, "strerror", None)
            return text.format(host=host, timeout=timeout, strerror=strerror, oserror=strerror or e,
                               reason=getattr(e, "reason", ""))
    return f"{type(e).__name__}: {e}"


def sudo_wrap(command: str) -> str:
    """`command` under sudo reading the password from stdin (no prompt text, no tty).

    The command's own stdin is /dev/null: when sudo needs no password it leaves the password
    line unread, and the command must not be able to read it."""
    return f"sudo -S -p '' -- sh -c {shlex.quote('exec </dev/null; ' + command)}"


async def run_command(conn: SSHClientConnection, command: str, *, sudo_password: str | None = None,
                      timeout: float | None = None) -> tuple[int | None, str, str]:
    """Run `command` with the remote user's shell; (exit status or None if killed, stdout, stderr)."""
    stdin = None
    if sudo_password is not None:
        command = sudo_wrap(command)
        stdin = sudo_password + "\n"
    r = await conn.run(command, check=False, input=stdin, timeout=timeout, encoding="utf-8", errors="replace")
    out = r.stdout if isinstance(r.stdout, str) else ""
    err = r.stderr if isinstance(r.stderr, str) else ""
    if r.exit_signal:
        err += f"\n(killed by signal {r.exit_signal[0]})"
    return r.exit_status, out, err
