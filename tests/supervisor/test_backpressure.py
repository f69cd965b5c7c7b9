"""One stuck worker does not hold up the others (supervisor/backlog.py), end to end: a real node,
real rings, a worker stopped with SIGSTOP while MQTT floods its module. Judged by order: the other
runtime answers each ping sent *after* more flood for the stopped one, while that one stays stopped;
then the stopped one, resumed, gets every message in order, and a delete sent last comes last.

(Before: the supervisor waited up to 1 s per message for the full ring, so every ping waited
behind one second per flood message, and the messages that timed out were lost.)"""
from __future__ import annotations

import os
import signal
from typing import Any

from testbed.control import create, delete, js
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from testbed.wait import wait_until

SIZE = 16 << 10  # 64 of them fill a worker's 1 MiB ring
FIRST = 100  # the first flood: more than the ring takes
ROUNDS, MORE = 5, 10  # then ROUNDS x (MORE flood messages, one ping for the other runtime)


def stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def worker_pid(n: NodeProcess, name: str) -> int:
    for pid in n.worker_pids():
        with open(f"/proc/{pid}/cmdline") as f:
            if f.read().replace("\0", " ").strip() == f"silverline: rt.{name}":
                return pid
    raise AssertionError(f"no worker process titled rt.{name}: {n.worker_pids()}")


def test_a_stopped_worker_holds_only_its_own_messages_and_gets_them_all_in_order(broker: Any, probe: MqttProbe) -> None:
    probe.subscribe("bp/#")
    probe.subscribe("realm/proc/control/#")
    seq = 0

    def flood(k: int) -> None:
        nonlocal seq
        for _ in range(k):
            probe.publish("bp/a", b"%06d" % seq + b"." * (SIZE - 6))
            seq += 1

    with NodeProcess(broker.port, runtimes=["test/echo", "test/echo"], reg_timeout=0.3) as n:
        ra, rb = n.runtime_uuid("testnode.echo"), n.runtime_uuid("testnode.echo2")
        create(probe, ra, "A", prefix="A:", qos=1, channels=[{"path": "i", "mode": "r", "topic": "bp/a"},
                                                              {"path": "o", "mode": "w", "topic": "bp/out/a"}])
        create(probe, rb, "B", prefix="B:", qos=1, channels=[{"path": "i", "mode": "r", "topic": "bp/b"},
                                                              {"path": "o", "mode": "w", "topic": "bp/out/b"}])
        wait_until(lambda: n.output().count("opened channel 1") >= 2, 15, "channels open")
        pa = worker_pid(n, "testnode.echo")
        os.kill(pa, signal.SIGSTOP)
        try:
            wait_until(lambda: stopped(pa), 10, "worker A stopped")
            flood(FIRST)
            wait_until(lambda: "testnode.echo: its input ring is full" in n.output(), 15, "the backpressure warning")
            for r in range(ROUNDS):
                flood(MORE)
                probe.publish("bp/b", b"ping%d" % r)
                probe.wait_for("bp/out/b", lambda m, r=r: m.payload == b"B:ping%d" % r, timeout=15)
            assert stopped(pa) and probe.messages("bp/out/a") == []  # A did nothing meanwhile
            delete(probe, ra, "A")  # a control message queues behind the data
        finally:
            os.kill(pa, signal.SIGCONT)
        out = probe.wait_for("bp/out/a", count=seq, timeout=60)
        assert [int(m.payload[2:8]) for m in out] == list(range(seq))  # every message, in order
        probe.wait_for("realm/proc/control/" + ra, lambda m: js(m).get("action") == "exited", timeout=15)
        order = [m for m in probe.messages() if m.topic == "bp/out/a" or js_action(m) == "exited"]
        assert js_action(order[-1]) == "exited" and len(order) == seq + 1  # the delete came after all of them
        wait_until(lambda: "testnode.echo: its ring has room again" in n.output(), 15, "the end of the episode")
        assert "lost" not in n.output() and "refused" not in n.output()
        assert probe.messages("bp/out/b") and len(probe.messages("bp/out/b")) == ROUNDS


def js_action(m: Any) -> str | None:
    if not m.topic.startswith("realm/proc/control/"):
        return None
    return str(js(m).get("action"))
