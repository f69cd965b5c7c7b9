"""The fleet dashboard (orchestrator/dashboard.py) in a real headless Chromium (Debian's
`chromium`): the page on the REST port loads, renders a real node and its running module from
`/api/dashboard/`, and its screenshot is not blank."""
from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from silverline import Client
from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise RuntimeError("chromium is not installed: run `apt-get install chromium` (CI's .ci/run does)")
    return exe


def browse(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Chromium on `url` with a fresh profile; virtual time lets the page's polls run before the dump."""
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                           "--window-size=1280,900", *extra, url], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrchestratorProc]:
    with Mosquitto() as broker, OrchestratorProc(broker.port, str(tmp_path_factory.mktemp("orch")), ka_interval=1.0) as orch, \
            NodeProcess(broker.port, name="dashnode", runtimes=["linux"], reg_timeout=5):
        with Client(orch.config) as c:
            (m,) = c.run("cat.wasm", "dashnode", name="dash-mod")  # waits on stdin: stays running
            assert m.state == "A" and m.exit is None
            yield orch
            m.stop()
            m.wait(20)


def test_snapshot_groups_runtimes_by_node(fleet: OrchestratorProc) -> None:
    snap = fleet.get("/api/dashboard/")
    (node,) = snap["nodes"]
    assert node["name"] == "dashnode" and node["status"] == "A"
    (rt,) = node["runtimes"]
    assert rt["name"] == "dashnode" and rt["kind"] == "plain" and rt["running"] == 1 and rt["max"] == 128
    assert [m["name"] for m in rt["modules"]] == ["dash-mod"]
    assert snap["totals"] == {"nodes": 1, "runtimes": 1, "running": 1, "queued": 0}


def test_page_is_self_contained() -> None:
    from orchestrator.dashboard import PAGE

    assert "<script>" in PAGE and "<style>" in PAGE
    for outside in ("src=", "href=", "@import", "http://", "https://"):
        assert outside not in PAGE, outside


def test_the_page_in_headless_chromium(fleet: OrchestratorProc, tmp_path: Path) -> None:
    with urllib.request.urlopen(fleet.url + "/", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/html")
    dom = browse(fleet.url + "/", tmp_path / "profile-dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-node="dashnode"' in dom.stdout, dom.stdout[-3000:]
    assert 'data-runtime="dashnode"' in dom.stdout and "dash-mod" in dom.stdout
    assert "1 modules running" in dom.stdout
    shot = tmp_path / "dashboard.png"
    r = browse(fleet.url + "/", tmp_path / "profile-shot", f"--screenshot={shot}")
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 900)
    colors = img.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 20, f"screenshot looks blank: {len(colors)} colors"
    # the header bar is dark, the page light: both must be there
    dark = sum(n for n, (r_, g, b) in colors if r_ + g + b < 150)
    light = sum(n for n, (r_, g, b) in colors if r_ + g + b > 600)
    assert dark > 1280 * 20 and light > 1280 * 200, (dark, light)
