"""`manage.py status` resolves devices through the same SSH options as the cluster scripts.

Regression: status pinged the bare device name, ignoring the SSH config, so devices
defined only there (HostName / Port) showed "down" while `manage.py cmd` reached them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from cluster.ssh import SshOptions, resolve
from common.manifest import Device
from tests.cluster.conftest import Cluster
from testbed.node import NodeProcess
from testbed.orchestrator import ROOT, OrchestratorProc
from testbed.wait import wait_until


def test_resolve_reads_hostname_port_and_user_of_the_ssh_config(cluster: Cluster) -> None:
    opts = SshOptions(ssh_config=cluster.sshd.client_config)
    e = resolve(Device("dev1"), opts)
    assert (e.host, e.port, e.user) == ("127.0.0.1", cluster.sshd.port, cluster.sshd.user)
    assert resolve(Device("dev3"), opts).port == cluster.sshd.closed_port
    assert resolve(Device("dev1"), SshOptions(ssh_config=cluster.sshd.client_config, username="alice")).user == "alice"
    assert resolve(Device("elsewhere"), SshOptions(ssh_config=cluster.sshd.client_config, domain="lab")).host == "elsewhere.lab"


def test_status_and_cmd_agree_on_devices_defined_in_the_ssh_config(cluster: Cluster, orch: OrchestratorProc, broker: Any) -> None:
    rc, out, _ = cluster.run("cmd", "true")
    assert rc == 1  # dev3: nothing listens on its port
    with NodeProcess(broker.port, name="dev1", runtimes=["test/reg"], reg_timeout=5) as n:
        wait_until(lambda: orch.get_status(f"/api/runtimes/{n.runtime_uuid()}/")[0] == 200, 30, "runtime registered")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), "status", "-c", orch.config,
                            "-m", cluster.manifest, "-F", cluster.sshd.client_config, "--timeout", "5"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        lines = {ln.split("│")[1].strip(): ln for ln in r.stdout.splitlines() if ln.count("│") > 3}
        header = next(ln for ln in r.stdout.splitlines() if "Device" in ln and "Node" in ln)
        col = [c.strip() for c in header.split("┃")].index("Node")
        up = lambda d: lines[d].split("│")[col].strip()  # noqa: E731  (the Node column)
        assert up("dev1") == "up" and up("dev2") == "up" and up("dev3") == "down", r.stdout
        assert n.runtime_uuid() in lines["dev1"]


def test_status_with_a_missing_ssh_config_is_one_line(cluster: Cluster) -> None:
    r = subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), "status", "-m", cluster.manifest,
                        "-F", "/nonexistent/ssh_config"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "/nonexistent/ssh_config" in r.stderr
