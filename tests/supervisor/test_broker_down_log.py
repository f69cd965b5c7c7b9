"""With the broker down the node does not log an ERR line every 2 s for ever: one line when the
outage starts, a summary a minute, one line when it is over (common/outage.py, mqtt_link.py)."""
from __future__ import annotations

import logging

import pytest

from common.outage import OutageLog
from testbed.broker import Mosquitto, free_port
from testbed.node import NodeProcess
from testbed.wait import wait_until


def test_outage_log_unit(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = logging.getLogger("test.outage")
    o = OutageLog(log, every=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.outage"):
        for _ in range(30):  # one minute of retries every 2 s
            o.failed("cannot connect to broker: refused", "retrying")
            now[0] += 2.0
        o.failed("cannot connect to broker: refused")  # past the minute: one summary
        o.failed("broker refused the connection: not authorized")  # the reason changed: said at once
        note = o.recovered()
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == ["cannot connect to broker: refused; retrying (repeats are summed up once a minute)",
                    "cannot connect to broker: refused: still failing, 31 attempts in 60 s",
                    "broker refused the connection: not authorized (repeats are summed up once a minute)"], msgs
    assert note == " after 32 failed attempts in 60 s" and o.recovered() == ""


def test_node_with_the_broker_down_logs_once_then_says_it_is_back() -> None:
    port = free_port()
    node = NodeProcess(port, name="lonely", runtimes=["test/reg"], log_level="DBG")
    try:
        node.start(wait=False)
        wait_until(lambda: _errors(node.output()), 20, "the first broker-down line")
        # four more attempts (each retry is a debug line): the old code logged an ERR line for each
        wait_until(lambda: sum("[mq:DBG] cannot connect to MQTT broker" in ln for ln in node.output().splitlines()) >= 4,
                   60, "four retries")
        errors = _errors(node.output())
        assert len(errors) == 1 and "cannot connect to MQTT broker" in errors[0], errors
        with Mosquitto(port=port):
            wait_until(lambda: "connected to MQTT broker" in node.output(), 20, "reconnected")
            line = next(ln for ln in node.output().splitlines() if "connected to MQTT broker" in ln)
            assert "failed attempts in" in line, line
    finally:
        node.stop()


def _errors(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if "[mq:ERR]" in ln]
