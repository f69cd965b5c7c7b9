"""The fleet dashboard (orchestrator/dashboard.py) in a real headless Chromium (Debian's
`chromium`): the page on the REST port loads, renders a real node and its running module from
`/api/dashboard/`, and its screenshot is not blank; ours (issue #27): ended modules with how they
ended, deployments desired vs running, keepalive age per runtime, a module's output tail
(`#logs=UUID`), and CPU that shows real use while a benchmark cell runs (its runs are forked children)."""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

import orjson

from common.wire import envelope
from silverline import Client
from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import ROOT, OrchestratorProc
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
            (h,) = c.run("helloworld.wasm", "dashnode", name="dash-hello")  # ends at once: an ended module
            assert h.wait(20).ok
            (t,) = c.run("trap.wasm", "dashnode", name="dash-trap")
            assert not t.wait(20).ok
            c.publish("realm/proc/control", orjson.dumps(envelope("apply_deployments", {"deployments": [
                {"name": "dash-dep", "file": "nosuch-for-dashboard.wasm", "count": 1, "restart": "never"}]})))
            wait_until(lambda: "Hello" in json.dumps(orch.get(f"/api/logs/{h.uuid}/")), 20, "hello's output kept")
            wait_until(lambda: len(orch.get("/api/dashboard/")["ended"]) >= 3, 20, "three ended modules")
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
    assert isinstance(rt["keepalive_age"], float) and 0 <= rt["keepalive_age"] < 30
    ended = {m["name"]: m for m in snap["ended"]}
    assert ended["dash-hello"]["reason"] == "exited" and ended["dash-hello"]["code"] == 0
    assert ended["dash-trap"]["reason"] == "crashed" and ended["dash-trap"]["error"], ended["dash-trap"]
    assert ended["dash-dep-0"]["runtime"] == "dashnode" and ended["dash-dep-0"]["error"], ended["dash-dep-0"]
    assert snap["deployments"] == [{"name": "dash-dep", "desired": 1, "running": 0, "restart": "never"}]


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
    assert 'data-ended="dash-hello"' in dom.stdout and 'data-ended="dash-trap"' in dom.stdout and ">crashed<" in dom.stdout
    assert 'data-deployment="dash-dep"' in dom.stdout
    assert "keepalive " in dom.stdout and " s ago" in dom.stdout
    hello = next(m for m in fleet.get("/api/dashboard/")["ended"] if m["name"] == "dash-hello")
    logs = browse(fleet.url + "/#logs=" + hello["uuid"], tmp_path / "profile-logs", "--dump-dom")
    assert logs.returncode == 0, logs.stderr[-2000:]
    pre = logs.stdout.split('id="logtext"', 1)[1].split("</pre>", 1)[0]
    assert "Hello" in pre, logs.stdout[-3000:]
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


def test_cpu_shows_while_a_benchmark_cell_runs(tmp_path: Path) -> None:
    """A benchmarking runtime runs a cell's runs in forked children: its keepalive must still show
    the CPU they use (it showed 0 %: issue #27)."""
    with Mosquitto() as broker, OrchestratorProc(broker.port, str(tmp_path), ka_interval=1.0) as orch, \
            NodeProcess(broker.port, name="cpunode", runtimes=["benchmarking"], reg_timeout=5,
                        extra_args=["--module-root", f"{ROOT}/build/modules"]), Client(orch.config) as c:
        (b,) = c.benchmark(f"{ROOT}/build/modules/spin.wasm", "cpunode", repeat=200, argv=["50"])

        def busy() -> bool:
            (node,) = orch.get("/api/dashboard/")["nodes"]
            return any(m["name"] == b.name and (m["cpu"] or 0) > 5 for m in node["runtimes"][0]["modules"])

        wait_until(busy, 60, "the cell's CPU shown above 5 %")
        b.stop()
        b.wait(30)


def test_the_page_sends_the_rest_token(tmp_path: Path) -> None:
    """With --token-file the page itself is served, and its data only with the token: opened as
    `/#token=TOKEN` it renders the fleet; without the token it says what it needs."""
    token = "dashboard-token-0123456789"
    (tmp_path / "token").write_text(token + "\n")
    with Mosquitto() as broker:
        orch = OrchestratorProc(broker.port, str(tmp_path), ka_interval=1.0,
                                extra_args=["--token-file", str(tmp_path / "token")])
        orch.token = token
        with orch, NodeProcess(broker.port, name="tokennode", runtimes=["linux"], reg_timeout=5):
            wait_until(lambda: len(orch.get("/api/dashboard/")["nodes"]) == 1, 20, "the node registered")
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(orch.url + "/api/dashboard/", timeout=10)
            assert e.value.code == 401
            e.value.close()
            dom = browse(orch.url + "/#token=" + token, tmp_path / "profile-token", "--dump-dom")
            assert dom.returncode == 0, dom.stderr[-2000:]
            assert 'data-node="tokennode"' in dom.stdout, dom.stdout[-3000:]
            bare = browse(orch.url + "/", tmp_path / "profile-bare", "--dump-dom")
            assert bare.returncode == 0, bare.stderr[-2000:]
            assert 'data-node="tokennode"' not in bare.stdout and "needs the REST token" in bare.stdout, bare.stdout[-3000:]
            assert '<form id="tokenform" class="panel">' in bare.stdout  # shown: no longer hidden


def test_a_campaign_shows_its_failures_by_reason_and_a_bar_per_outcome(tmp_path: Path) -> None:
    """A finished campaign whose cells failed showed a full green bar (issue #24): the page shows
    done, failed (by reason) and data-pending cells as segments of their own."""
    from orchestrator.dashboard import _campaign

    s = {"id": "c", "cells": 10, "done": 2, "data_pending": 1, "failed": {"error": 1, "trap": 0}, "queued": 4,
         "running": 2, "finished": False, "created": 1000.0}
    assert _campaign(s, 1040.0)["eta_s"] == 60.0  # 4 cells ended in 40 s: 6 more take about 60 s
    assert _campaign({**s, "done": 0, "data_pending": 0, "failed": {}}, 1040.0)["eta_s"] is None  # no rate yet
    with Mosquitto() as broker, OrchestratorProc(broker.port, str(tmp_path), ka_interval=1.0) as orch, \
            NodeProcess(broker.port, name="campnode", runtimes=["linux"], reg_timeout=5), Client(orch.config) as c:
        c.publish("realm/proc/control", orjson.dumps(envelope("create_campaign", {"campaign": "dash-camp", "plan": {
            "runtimes": ["campnode"], "files": ["nosuch-for-dashboard.wasm"], "engines": ["wasmtime"],
            "argsets": [["1"], ["2"]], "seed": 1, "args": {"repeat": 1}}})))

        def failed_both() -> bool:
            camps = orch.get("/api/dashboard/")["campaigns"]
            return bool(camps) and sum(camps[0]["failed"].values()) == 2

        wait_until(failed_both, 30, "both cells of the campaign failed")
        (camp,) = orch.get("/api/dashboard/")["campaigns"]
        assert camp["finished"] and camp["done"] == 0 and camp["eta_s"] is None, camp
        dom = browse(orch.url + "/", tmp_path / "profile-camp", "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        box = dom.stdout.split('data-campaign="dash-camp"', 1)[1].split("</div></div>", 1)[0]
        reasons = ", ".join(f"{k} {n}" for k, n in camp["failed"].items() if n)
        assert f"0 done, 2 failed ({reasons}), 0 data pending" in box and "(finished)" in box, box
        assert 'class="done" style="width: 0%;"' in box and 'class="failed" style="width: 100%;"' in box, box
