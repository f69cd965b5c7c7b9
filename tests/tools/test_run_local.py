"""`make run` (tools/run_local.py --check): broker, orchestrator and node come up on free
ports and the script shows them working, then stops everything."""
from __future__ import annotations

import subprocess
import sys

from testbed.broker import free_port
from testbed.node import ROOT


def test_make_run_check_brings_everything_up_and_down() -> None:
    port, http = free_port(), free_port()
    p = subprocess.run([sys.executable, "tools/run_local.py", "--check", "--port", str(port), "--http-port", str(http),
                        "--name", "runcheck"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert f"mosquitto on 127.0.0.1:{port}" in out
    assert "== it works." in out
    assert "registered runtime runcheck" in out
    if "orchestrator: REST API" in out:
        assert "runcheck" in out.split("manage.py list", 1)[1]
    # nothing left listening
    import socket

    for prt in (port, http):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", prt)) != 0
