"""The node's systemd unit is confined (docs/security.md): its hardening lines verify clean, and
`systemd-analyze security` rates it as docs/security.md says (exposure <= 2.0, "OK")."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from cli.install import render_unit

ANALYZE = shutil.which("systemd-analyze")
PROJECT = str(Path(__file__).resolve().parents[2])


def _unit(tmp_path: Path) -> Path:
    p = tmp_path / "silverline-node@n1.service"
    p.write_text(render_unit(project=PROJECT, python=sys.executable, user="silverline", etc="/etc/silverline"))
    return p


def test_the_unit_is_hardened_and_scores_as_documented(tmp_path: Path) -> None:
    assert ANALYZE, "systemd-analyze is missing: apt-get install systemd (.ci/run does)"
    unit = _unit(tmp_path)
    text = unit.read_text()
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "CapabilityBoundingSet=\n",
                 "ReadWritePaths=-/srv/silverline", "User=silverline", "RestrictRealtime=yes"):
        assert line in text, line
    r = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert (r.stdout + r.stderr).strip() == ""
    r = subprocess.run([ANALYZE, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", r.stdout)
    assert m, r.stdout[-500:] + r.stderr
    score = float(m.group(1))
    assert score <= 2.0 and m.group(2) == "OK", r.stdout[-2000:]
    doc = (Path(PROJECT) / "docs" / "security.md").read_text()
    assert f"exposure {score}" in doc, f"docs/security.md does not state the score {score}"
