"""A real OpenSSH server on 127.0.0.1 and a free port, with throwaway keys, for cluster tests.

Everything lives in one temp directory (host key, client key, authorized_keys, known_hosts,
an ssh client config naming the test devices); `close()` kills sshd and removes it. The
client config makes the tools ignore the user's own ~/.ssh (IdentitiesOnly, no agent,
its own known_hosts).
"""
from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile

from testbed.broker import free_port, wait_port
from testbed.procs import stop_process

SSHD = "/usr/sbin/sshd"


class Sshd:
    def __init__(self, devices: tuple[str, ...] = ("dev1", "dev2"), unreachable: tuple[str, ...] = ("dev3",)) -> None:
        if not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
            raise RuntimeError("OpenSSH is not installed: run `apt-get install openssh-server openssh-client` (CI's .ci/run does)")
        self.devices = devices
        self.unreachable = unreachable
        self.dir = tempfile.mkdtemp(prefix="sl-sshd-")
        self.port = free_port()
        self.closed_port = free_port()  # nothing listens here: the unreachable device
        self.user = getpass.getuser()
        self.proc: subprocess.Popen[bytes] | None = None
        self.host_key = self.path("host_key")
        self.client_key = self.path("client_key")
        self.known_hosts = self.path("known_hosts")
        self.client_config = self.path("ssh_config")
        self.server_config = self.path("sshd_config")
        self.log = self.path("sshd.log")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _write(self) -> None:
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sl-test", "-f", key], check=True)
        shutil.copy(self.client_key + ".pub", self.path("authorized_keys"))
        with open(self.host_key + ".pub") as f:
            kind, blob = f.read().split()[:2]
        with open(self.known_hosts, "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {kind} {blob}\n")
        with open(self.server_config, "w") as f:
            f.write("\n".join([
                f"Port {self.port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {self.host_key}",
                f"PidFile {self.path('sshd.pid')}",
                f"AuthorizedKeysFile {self.path('authorized_keys')}",
                "PermitRootLogin yes",  # tests run as root here
                "StrictModes no",  # the temp dir's modes are not sshd's business
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "Subsystem sftp internal-sftp",
                "MaxStartups 100",
                "LogLevel ERROR",
            ]) + "\n")
        lines = [f"Host {' '.join(self.devices)}", "    HostName 127.0.0.1", f"    Port {self.port}"]
        if self.unreachable:
            lines += [f"Host {' '.join(self.unreachable)}", "    HostName 127.0.0.1", f"    Port {self.closed_port}"]
        lines += [
            "Host *",
            f"    User {self.user}",
            f"    IdentityFile {self.client_key}",
            "    IdentitiesOnly yes",
            "    IdentityAgent none",
            f"    UserKnownHostsFile {self.known_hosts}",
            "    StrictHostKeyChecking yes",
            "    BatchMode yes",
            "    ConnectTimeout 10",
        ]
        with open(self.client_config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self) -> "Sshd":
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True) if os.geteuid() == 0 else None  # privilege separation dir
        self._write()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.server_config], stdout=log, stderr=log)
        try:
            wait_port(self.port, timeout=15)
        except TimeoutError:
            self.close()
            raise
        return self

    def server_log(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self) -> None:
        stop_process(self.proc)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Sshd":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
