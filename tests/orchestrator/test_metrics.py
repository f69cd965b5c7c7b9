"""`GET /metrics` (orchestrator/metrics.py) against a real orchestrator, broker and node: the text
format parses line by line, and the figures are the fleet's (issue #27)."""
from __future__ import annotations

import re
import urllib.request
from typing import Any

from common.wire import envelope, new_uuid
from orchestrator.metrics import Histogram
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$')


def scrape(orch: OrchestratorProc) -> tuple[str, dict[str, float]]:
    with urllib.request.urlopen(orch.url + "/metrics", timeout=10) as r:
        ctype, text = r.headers["Content-Type"], r.read().decode()
    samples: dict[str, float] = {}
    for ln in text.splitlines():
        if ln.startswith("#"):
            assert ln.startswith(("# HELP ", "# TYPE ")), ln
            continue
        m = LINE.match(ln)
        assert m, f"not the text format: {ln!r}"
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return ctype, samples


def test_metrics_show_the_fleet(broker: Any, orch: OrchestratorProc, probe: MqttProbe, tmp_path: Any) -> None:
    with NodeProcess(broker.port, name="m1", runtimes=["test/echo"], reg_timeout=5) as n:
        rt = n.runtime_uuid()
        wait_until(lambda: orch.get_status(f"/api/runtimes/{rt}/")[0] == 200, 30, "runtime registered")
        for _ in range(3):
            probe.publish("realm/proc/control", envelope("create", {"type": "module", "uuid": new_uuid(), "name": "e",
                                                                     "file": "none", "parent": rt}))
        probe.publish("realm/proc/control", envelope("apply_deployments", {"deployments": [
            {"name": "web", "file": "none", "count": 2}]}))
        wait_until(lambda: scrape(orch)[1].get('silverline_deployment_running{deployment="web"}') == 2, 30, "web running")
        ctype, s = scrape(orch)
        assert ctype.startswith("text/plain; version=0.0.4")
        assert s['silverline_nodes{kind="runtime",state="A"}'] == 1 and s['silverline_nodes{kind="manager",state="A"}'] == 1
        assert s['silverline_modules{state="A"}'] == 5 and s["silverline_queued_modules"] == 0
        assert s['silverline_deployment_desired{deployment="web"}'] == 2
        assert s["silverline_decision_seconds_count"] >= 5 and s["silverline_messages_total"] >= 5
        assert s['silverline_decision_seconds_bucket{le="+Inf"}'] == s["silverline_decision_seconds_count"]
        assert s["silverline_mqtt_connected"] == 1


def test_histogram_is_cumulative() -> None:
    h = Histogram((0.1, 1.0))
    h.observe_many([0.05, 0.1, 0.5, 2.0])
    lines = h.lines("x", "help")
    assert 'x_bucket{le="0.1"} 2' in lines and 'x_bucket{le="1"} 3' in lines and 'x_bucket{le="+Inf"} 4' in lines
    assert "x_count 4" in lines and "x_sum 2.650000" in lines
