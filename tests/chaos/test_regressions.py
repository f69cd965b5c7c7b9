"""Regression tests for the failures the chaos suite found (each named after what broke)."""
from __future__ import annotations

import os
import random
import uuid as _uuid
from typing import Any, Iterator

import pytest

from chaos import fuzz
from chaos.base import REALM, Inbox, Watch, js, module_create, module_delete, wait_until
from common.topics import ChannelError, resolve
from testbed.node import NodeProcess
from ipc.messages import FLAG_READ, FLAG_WRITE
from common.topics import Grant

GRANTS = [Grant("g", "rw", "fz/g")]


@pytest.fixture
def live(broker: Any) -> Iterator[tuple[NodeProcess, Watch, Inbox]]:
    inbox = Inbox()
    watch = Watch(broker.port, inbox, [(f"{REALM}/proc/log", 1), (f"{REALM}/proc/control/+", 1)])
    node = NodeProcess(broker.port, name="reg", runtimes=["test/echo", "test/reg"], reg_timeout=0.3, backoff=0.2)
    try:
        node.start(timeout=60)
        yield node, watch, inbox
    finally:
        node.stop()
        watch.close()


@pytest.mark.parametrize("topic", ["g/" + "x" * 70000, "g/a#", "g/a+b", "g/#/x", "g/\t", "g/\x7f", "g/\u0085", "g/\ufffe", "$SL/#"])
def test_channel_topic_mqtt_refuses_is_refused_at_open(topic: str) -> None:
    with pytest.raises(ChannelError):
        resolve(topic, FLAG_READ, realm=REALM, module_uuid="m", grants=GRANTS)


def test_channel_topic_valid_filters_still_open() -> None:
    assert resolve("g/+/x", FLAG_READ, realm=REALM, module_uuid="m", grants=GRANTS) == "fz/g/+/x"
    assert resolve("g/#", FLAG_READ, realm=REALM, module_uuid="m", grants=GRANTS) == "fz/g/#"
    assert resolve("g/\u00e9\u4e2d", FLAG_WRITE, realm=REALM, module_uuid="m", grants=GRANTS) == "fz/g/\u00e9\u4e2d"


def _open_and_check(node: NodeProcess, watch: Watch, inbox: Inbox, topic: str) -> None:
    rt = node.runtime_uuids[sorted(node.runtime_uuids)[0]]
    u = str(_uuid.uuid4())
    mark = len(inbox)
    watch.publish(f"{REALM}/proc/control/{rt}", module_create(u, rt, channels=[{"path": "g", "mode": "rw", "topic": "fz/g"}],
                                                             open=[[3, FLAG_READ, topic]])).wait_for_publish(10)
    inbox.wait(lambda t, p: "channel refused" in str((js(p).get("data") or {}).get("error")), 20, since=mark)
    watch.publish(f"{REALM}/proc/control/{rt}", module_delete(u)).wait_for_publish(10)
    inbox.wait(lambda t, p: js(p).get("action") == "exited" and js(p)["data"].get("uuid") == u, 20, since=mark)
    assert fuzz.node_serves(node, watch, inbox, rt)
    assert node.proc is not None and node.proc.poll() is None
    assert "lost MQTT broker" not in node.output()


def test_overlong_channel_topic_refused_and_supervisor_survives_delete(live: tuple[NodeProcess, Watch, Inbox]) -> None:
    _open_and_check(*live, "g/" + "x" * 66000)


def test_control_character_topic_does_not_get_the_node_disconnected(live: tuple[NodeProcess, Watch, Inbox]) -> None:
    _open_and_check(*live, "g/tab\there")


def test_corrupt_ring_kills_the_worker_not_the_supervisor(live: tuple[NodeProcess, Watch, Inbox]) -> None:
    node, watch, inbox = live
    res = fuzz.live_ipc_records(50, random.Random(1), node=node, watch=watch, inbox=inbox)
    assert res["failures"] == []
    assert res["supervisor_alive"] and res["worker_replaced"] == res["corrupt_rings"] == 5
    rt = node.runtime_uuids[sorted(node.runtime_uuids)[1]]
    wait_until(lambda: fuzz.node_serves(node, watch, inbox, rt), 30, "the replaced worker serves")


def test_node_reregisters_within_5s_after_a_9s_broker_outage() -> None:
    """The reconnect backoff was capped at 30 s: after a 9 s outage the node came back 6.5 s late."""
    from chaos import broker_loss
    from chaos.base import SIZES
    out = broker_loss.run(SIZES["test"], outages=[9.0])
    assert out.failures == []
    assert out.figures["broker_reregister_s"] <= 5.0 and out.figures["control_lost"] == 0


def test_full_rings_both_ways_do_not_deadlock_supervisor_and_worker(live: tuple[NodeProcess, Watch, Inbox]) -> None:
    """Big creates (supervisor -> worker) crossing big opens (worker -> supervisor) filled both rings:
    each side waited for the other, progress came only from 5 s timeouts, and timed-out messages were lost."""
    node, watch, inbox = live
    rt = node.runtime_uuids[sorted(node.runtime_uuids)[0]]
    mods = [str(_uuid.uuid4()) for _ in range(8)]
    mark = len(inbox)
    for m in mods:  # ~360 KB each: three fill the 1 MiB ring
        opens = [[fd, FLAG_READ, f"g/{fd}/" + "y" * 60000] for fd in range(6)]
        watch.publish(f"{REALM}/proc/control/{rt}", module_create(m, rt, channels=[{"path": "g", "mode": "rw", "topic": "fz/g"}],
                                                                 open=opens), qos=1)
    wait_until(lambda: node.output().count("opened channel") >= 48, 60, "48 long-topic channels opened")
    for m in mods:
        watch.publish(f"{REALM}/proc/control/{rt}", module_delete(m)).wait_for_publish(10)
    inbox.wait(lambda t, p: js(p).get("action") == "exited" and js(p)["data"].get("uuid") in mods, 60, count=8, since=mark)
    assert "cannot send to worker" not in node.output() and "lost:" not in node.output()


def test_create_larger_than_the_ring_is_refused_with_an_error(live: tuple[NodeProcess, Watch, Inbox]) -> None:
    """Such a create used to stay pending forever without a word."""
    node, watch, inbox = live
    rt = node.runtime_uuids[sorted(node.runtime_uuids)[0]]
    u = str(_uuid.uuid4())
    mark = len(inbox)
    watch.publish(f"{REALM}/proc/control/{rt}", module_create(u, rt, blob="z" * 600_000)).wait_for_publish(10)
    ex = inbox.wait(lambda t, p: js(p).get("action") == "exited" and js(p)["data"].get("uuid") == u, 30, since=mark)
    st = js(ex[0][2])["data"]["status"]
    assert st["reason"] == "error" and "larger than" in st["error"]
    inbox.wait(lambda t, p: "more than a worker takes" in str((js(p).get("data") or {}).get("error")), 30, since=mark)
    assert fuzz.node_serves(node, watch, inbox, rt)


def test_profile_with_a_very_long_module_name_is_stored(tmp_path: Any) -> None:
    """A 300-character name in a profile topic gave `File name too long` (OSError) in the collector."""
    from collector.store import ProfileStore, safe_name
    store = ProfileStore(str(tmp_path))
    path = store.on_profile(f"{REALM}/proc/profile/benchmarking/{'r' * 300}/{'m' * 300}", b"\x00" * 16, REALM)
    assert path is not None and os.path.exists(path) and len(os.path.basename(path)) < 255
    assert safe_name("a" * 300) != safe_name("a" * 299 + "b")


def test_deeply_nested_control_message_does_not_deafen_the_orchestrator(broker: Any, tmp_path: Any) -> None:
    """Its error report could not be encoded; the TypeError killed the orchestrator's MQTT thread."""
    from chaos.fuzz import ErrLog
    from testbed.orchestrator import OrchestratorProc
    errlog = ErrLog()
    with OrchestratorProc(broker.port, str(tmp_path)) as orch:
        watch = Watch(broker.port, lambda t, p: errlog.add(p), [(f"{REALM}/proc/log", 1)])
        try:
            deep = b'{"action":"create","data":{"uuid":7,"x":' + b"[" * 1020 + b"1" + b"]" * 1020 + b"}}"
            watch.publish(f"{REALM}/proc/control", deep).wait_for_publish(10)
            watch.publish(f"{REALM}/proc/control", b"not json").wait_for_publish(10)
            wait_until(lambda: len(errlog.since(0, "description")) >= 2, 30, "both messages answered with an error")
            assert orch.proc is not None and orch.proc.poll() is None
        finally:
            watch.close()
