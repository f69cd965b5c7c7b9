"""The node's Prometheus endpoint (`start.py --metrics-port`, supervisor/metrics.py) on a real node
with a real broker: worker states and starts, modules, ring traffic, backpressure (issue #27)."""
from __future__ import annotations

import re
import urllib.request
from typing import Any

from common.wire import envelope, new_uuid
from testbed.broker import free_port
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from testbed.wait import wait_until


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    out = {}
    for ln in text.splitlines():
        if ln.startswith("#"):
            continue
        m = re.match(r'^(\w+)\{([^}]*)\} (\S+)$', ln)
        assert m, ln
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        key = m.group(1) + "".join(f",{k}={v}" for k, v in sorted(labels.items()) if k not in ("node", "runtime"))
        out[key] = float(m.group(3))
    return out


def test_node_metrics(broker: Any, probe: MqttProbe) -> None:
    port = free_port()
    with NodeProcess(broker.port, name="mnode", runtimes=["test/echo"], extra_args=["--metrics-port", str(port)]) as n:
        rt = n.runtime_uuid()
        wait_until(lambda: scrape(port).get("silverline_node_worker_state,state=RUNNING") == 1, 30, "worker running")
        s = scrape(port)
        assert s["silverline_node_worker_starts_total"] == 1 and s["silverline_node_modules"] == 0
        u = new_uuid()
        probe.subscribe("t/m/out")
        probe.publish(f"realm/proc/control/{rt}", envelope("create", {
            "type": "module", "uuid": u, "name": "echo", "parent": rt, "file": "none",
            "channels": [{"path": "t/m/in", "mode": "r", "topic": "t/m/in"}, {"path": "t/m/out", "mode": "w", "topic": "t/m/out"}]}))
        wait_until(lambda: scrape(port)["silverline_node_modules"] == 1, 30, "module in its slot")
        wait_until(lambda: " on t/m/in" in n.output(), 30, "its input channel subscribed")  # else m0.. may go before it
        before = scrape(port)["silverline_node_ring_messages_total,direction=to_worker"]
        for i in range(5):
            probe.publish("t/m/in", f"m{i}".encode())
        probe.wait_for("t/m/out", lambda m: m.payload == b"m4", timeout=20)
        s = scrape(port)
        assert s["silverline_node_ring_messages_total,direction=to_worker"] >= before + 5
        assert s["silverline_node_ring_bytes_total,direction=to_worker"] > 0
        assert s["silverline_node_ring_messages_total,direction=from_worker"] >= 5
        assert s["silverline_node_backpressure_waiting"] == 0
        probe.publish("t/m/in", b"!crash")  # the worker dies and is started again
        wait_until(lambda: scrape(port)["silverline_node_worker_starts_total"] == 2
                   and scrape(port).get("silverline_node_worker_state,state=RUNNING") == 1, 30, "worker restarted")
    assert "metrics on http://127.0.0.1" in n.output()


def test_off_by_default(broker: Any) -> None:
    with NodeProcess(broker.port, name="plain", runtimes=["test/echo"]) as n:
        pass
    assert "metrics on" not in n.output()
