"""The MQTT link over paho: its fast paths are on with the paho this project pins, every paho
internal it uses is in paho_adapter.py, and the QoS 0 path round-trips through the link itself."""
from __future__ import annotations

import logging
import os
import re
import selectors
from typing import Any

import paho.mqtt
import pytest

from common.config import Config
from supervisor import paho_adapter
from supervisor.mqtt_link import MqttLink
from testbed.wait import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_link(got: list[tuple[str, bytes]]) -> MqttLink:
    link = MqttLink(Config(), client_id="t", selector=selectors.DefaultSelector(),
                    on_message=lambda t, p: got.append((t, p)), on_connect=lambda: None)
    link.connected = True  # encode as if connected; nothing is sent
    link._sock = object()  # "connected" for the parser; paho itself has no socket and drops what it is fed
    return link


def test_fast_paths_are_on_with_the_installed_paho(caplog: pytest.LogCaptureFixture) -> None:
    paho_adapter._said.clear()
    with caplog.at_level(logging.INFO, logger="mq"):
        link = make_link([])
    assert link.paho.fast_out and link.paho.fast_in, (link.paho.missing_out, link.paho.missing_in)
    assert paho.mqtt.__version__.rsplit(".", 1)[0] in paho_adapter.TESTED_PAHO
    assert [r.getMessage() for r in caplog.records if "paho-mqtt" in r.getMessage()] == [
        f"paho-mqtt {paho.mqtt.__version__}: QoS 0 publish fast path, inbound fast parser"]
    with caplog.at_level(logging.INFO, logger="mq"):
        make_link([])  # said once per process
    assert sum("paho-mqtt" in r.getMessage() for r in caplog.records) == 1


def test_pyproject_range_names_only_the_tested_minor_versions() -> None:
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        spec = re.search(r'"paho-mqtt([^"]*)"', f.read())
    assert spec is not None
    tested = paho_adapter.TESTED_PAHO
    last_major, last_minor = (int(x) for x in tested[-1].split("."))
    assert spec.group(1) == f">={tested[0]},<{last_major}.{last_minor + 1}"


def test_only_the_adapter_touches_paho_internals() -> None:
    here = os.path.join(ROOT, "supervisor")
    for name in os.listdir(here):
        if name.endswith(".py") and name != "paho_adapter.py":
            with open(os.path.join(here, name)) as f:
                text = f.read()
            assert not re.search(r"client\._[a-z]", text), f"supervisor/{name} uses a paho internal"
            if name != "mqtt_link.py":
                assert not re.search(r"link\._", text), f"supervisor/{name} reads the link's private state (its socket: link.fileno())"


def test_qos0_round_trip_through_the_link() -> None:
    got: list[tuple[str, bytes]] = []
    link = make_link(got)
    for i in range(5):
        link.publish(f"t/{i}", b"x" * i, 0)
    link._inbuf += bytes(link._fast_buf)
    link._parse()
    assert got == [(f"t/{i}", b"x" * i) for i in range(5)] and link._inbuf == b""


def test_without_the_internals_the_link_falls_back(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(paho_adapter, "OUT_NEEDS", ("_no_such_attribute",))
    paho_adapter._said.clear()
    with caplog.at_level(logging.INFO, logger="mq"):
        link = make_link([])
    assert not link.paho.fast_out and link.paho.fast_in and not link.backlog()
    assert any("through paho (lacks _no_such_attribute)" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    paho_adapter._said.clear()


@pytest.mark.parametrize("fast_in", [True, False])
def test_link_receives_from_a_real_broker_on_either_inbound_path(broker: Any, probe: Any, monkeypatch: pytest.MonkeyPatch,
                                                                fast_in: bool) -> None:
    if not fast_in:
        monkeypatch.setattr(paho_adapter, "IN_NEEDS", ("_no_such_attribute",))  # paho reads: read_burst
    got: list[tuple[str, bytes]] = []
    sel = selectors.DefaultSelector()
    link = MqttLink(Config(mqtt="127.0.0.1", mqtt_port=broker.port), client_id=f"t-{fast_in}", selector=sel,
                    on_message=lambda t, p: got.append((t, p)), on_connect=lambda: None)
    assert link.paho.fast_in is fast_in
    try:
        link.subscribe("in/#", 1)
        link.connect()

        def pump() -> None:
            for key, mask in sel.select(0.05):
                link.handle(mask)
            link.tick()
            link.flush()

        wait_until(lambda: pump() or (link.connected and "in/#" in link.subscriptions), 10, "connected")
        for _ in range(10):
            pump()  # the SUBACK
        for i in range(20):
            probe.publish(f"in/{i}", b"x" * i, qos=0 if i % 2 else 1)
        wait_until(lambda: pump() or len(got) == 20, 10, "20 messages")
        assert sorted(got) == sorted((f"in/{i}", b"x" * i) for i in range(20))
    finally:
        link.close()
        sel.close()


def test_qos0_goes_straight_to_the_socket_and_behind_what_paho_has_queued(broker: Any, probe: Any) -> None:
    """With paho's queue empty a flush writes the QoS 0 buffer itself (paho's writer is ~3 us a call);
    with something queued in paho (a QoS 1 publish not written yet) it goes behind it: order kept."""
    sel = selectors.DefaultSelector()
    link = MqttLink(Config(mqtt="127.0.0.1", mqtt_port=broker.port), client_id="t-direct", selector=sel,
                    on_message=lambda t, p: None, on_connect=lambda: None)
    queued: list[int] = []
    real_queue = link.client._packet_queue

    def spy(command: int, packet: Any, *a: Any, **kw: Any) -> Any:
        queued.append(command & 0xF0)
        return real_queue(command, packet, *a, **kw)

    link.client._packet_queue = spy  # type: ignore[method-assign]
    probe.subscribe("o/#", 1)
    try:
        link.connect()

        def pump() -> None:
            link.flush()
            for key, mask in sel.select(0.05):
                link.handle(mask)

        wait_until(lambda: pump() or link.connected, 10, "connected")
        queued.clear()
        link.publish("o/direct", b"d", 0)
        link.flush()
        assert queued == []  # not through paho
        link.publish("o/q1", b"a", 1)  # paho queues it (written by its writer on the next flush)
        link.publish("o/q0", b"b", 0)
        pump()
        wait_until(lambda: pump() or len(probe.messages("o/#")) == 3, 10, "three messages")
        assert [m.topic for m in probe.messages("o/#")] == ["o/direct", "o/q1", "o/q0"]
        assert queued == [0x30, 0x30]  # the QoS 1 publish and the QoS 0 buffer behind it
    finally:
        link.close()
        sel.close()
