"""A fleet that heals itself: real mosquitto, the real orchestrator, real `start.py` nodes.

Each test is named after what broke before:
- a node started before the orchestrator never registered (one 5 s wait, then silence);
- after an orchestrator restart with a new store nodes had to be restarted by hand;
- two supervisors with the same identity both ran every module;
- a clean stop fired the last will (the socket was closed with the broker's PUBACKs unread);
- a graceful stop reported every module `exited` (killed), so nothing was resurrected after a restart;
- against the original orchestrator (no answer to a second manager registration) the node must still
  register its runtimes and run modules, and say once what is missing.
"""
from __future__ import annotations

import os
import shutil
import signal
import time
from collections import Counter
from typing import Any

from common.wire import envelope, new_uuid
from testbed.control import create, delete
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until

R = "realm"


def node(broker: Any, tmp_path: Any, name: str, state: str | None = None, **kw: Any) -> NodeProcess:
    kw.setdefault("reg_timeout", 5)
    return NodeProcess(broker.port, name=name, runtimes=["test/echo"], state_dir=state or str(tmp_path / "state"), **kw)


def state_uuids(state: str, name: str) -> tuple[str, list[str]]:
    import json
    from pathlib import Path
    path = os.path.join(state, f"{name}.json")
    d = wait_until(lambda: json.loads(Path(path).read_text()), 20, f"state file {path}")
    return d["manager"], sorted(d["runtimes"].values())


def alive(orch: OrchestratorProc, rt: str) -> bool:
    return orch.get_status(f"/api/runtimes/{rt}/")[1].get("status") == "A"


def create_echo(probe: MqttProbe, rt: str, topic: str) -> str:
    u = new_uuid()
    probe.publish(f"{R}/proc/control", envelope("create", {
        "type": "module", "uuid": u, "name": "echo", "parent": rt, "file": "none",
        "args": {"prefix": f"{u}|"}, "channels": [{"path": topic, "mode": "rw", "topic": topic}]}))
    return u


def answers(probe: MqttProbe, topic: str, timeout: float = 20.0) -> list[str]:
    """Ping the echo modules on `topic` until one answers; the uuids of every answer to that ping.

    Fence for "no other answer": a second ping, once the first was answered. A module answers its
    pings in order, so when every module that answered the first has answered the second, its
    copies of the first are all in."""
    probe.subscribe(topic)

    def to(word: bytes) -> list[str]:
        return [m.payload.split(b"|")[0].decode() for m in probe.messages(topic) if m.payload.endswith(b"|" + word)]

    deadline = time.monotonic() + timeout
    i = 0
    while time.monotonic() < deadline:
        i += 1
        word = f"ping{i}-{new_uuid()[:6]}".encode()
        probe.publish(topic, word)
        try:
            probe.wait_for(topic, lambda m: m.payload.endswith(b"|" + word), timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        except TimeoutError:
            continue  # no module reads the topic yet (or at all): ping again
        fence = f"fence{i}-{new_uuid()[:6]}".encode()
        probe.publish(topic, fence)
        wait_until(lambda: Counter(to(fence)) >= Counter(to(word)), 20, f"the fence ping answered on {topic}")
        return to(word)
    return []


def test_a_node_started_before_the_orchestrator_registers_within_seconds_of_it(broker: Any, tmp_path: Any) -> None:
    n = node(broker, tmp_path, "early")
    n.start(wait=False)
    try:
        _, rts = state_uuids(str(tmp_path / "state"), "early")
        time.sleep(7.0)  # longer than --reg-timeout (5 s): the seed's node gave up here
        orch = OrchestratorProc(broker.port, str(tmp_path), ka_interval=1.0)
        orch.start()
        t0 = time.monotonic()  # it is up (its start returns once it serves): how soon the node follows, not its boot
        try:
            wait_until(lambda: all(alive(orch, r) for r in rts), 10, "the early node registered")
            took = time.monotonic() - t0
            assert took <= 5.0, took
            out = n.output()
            # one line per state change, not one per retry (there were several retries in those 7 s)
            assert out.count("no answer from the orchestrator to the registration of manager early") == 1, out
            assert "registered manager early (" in out  # "after N attempts"
        finally:
            orch.stop()
    finally:
        assert n.stop() == 0


def test_an_orchestrator_with_a_fresh_store_gets_the_nodes_back_at_once(broker: Any, tmp_path: Any) -> None:
    orch = OrchestratorProc(broker.port, str(tmp_path), ka_interval=1.0).start()
    try:
        with node(broker, tmp_path, "fresh") as n:
            rt = n.runtime_uuid()
            wait_until(lambda: alive(orch, rt), 20, "registered")
            orch.stop()
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(orch.db + suffix):
                    os.unlink(orch.db + suffix)
            orch.start()
            t0 = time.monotonic()  # up: how soon the node follows, not the orchestrator's boot on a busy machine
            assert orch.get_status(f"/api/runtimes/{rt}/")[0] in (200, 404)
            wait_until(lambda: alive(orch, rt), 10, "registered with the fresh store")
            assert time.monotonic() - t0 <= 5.0
            assert "registering again: orchestrator" in n.output()
    finally:
        orch.stop()


def test_a_second_supervisor_on_the_same_state_dir_refuses_to_start_naming_the_holder(broker: Any, tmp_path: Any) -> None:
    with node(broker, tmp_path, "twin", reg_timeout=0.3) as first:
        second = node(broker, tmp_path, "twin", reg_timeout=0.3)
        second.start(wait=False)
        assert second.wait_exit(30) == 4
        out = second.output()
        assert f"pid {first.pid} holds" in out and "twin.lock" in out, out
        assert first.proc is not None and first.proc.poll() is None  # the first one goes on


def test_a_copy_of_a_nodes_identity_elsewhere_is_refused_and_modules_run_once(broker: Any, tmp_path: Any) -> None:
    with OrchestratorProc(broker.port, str(tmp_path), ka_interval=1.0) as orch, _probe(broker) as probe:
        with node(broker, tmp_path, "dup") as first:
            rt = first.runtime_uuid()
            wait_until(lambda: alive(orch, rt), 20, "registered")
            create_echo(probe, rt, "dup/io")
            assert answers(probe, "dup/io")  # it runs
            copy = str(tmp_path / "other-machine")
            shutil.copytree(str(tmp_path / "state"), copy, ignore=shutil.ignore_patterns("*.lock"))
            second = node(broker, tmp_path, "dup", state=copy)
            second.start(wait=False)
            try:
                code = second.wait_exit(30)
            finally:
                second.stop()
            assert code == 4, second.output()
            assert "alive under another connection" in second.output()
            assert first.proc is not None and first.proc.poll() is None
            assert alive(orch, rt)  # the refused one's stop did not take the real one down
            got = answers(probe, "dup/io")
            assert len(got) == 1, got  # no module runs twice


class _probe:
    def __init__(self, broker: Any) -> None:
        self.p = MqttProbe(broker.port)

    def __enter__(self) -> MqttProbe:
        return self.p

    def __exit__(self, *exc: object) -> None:
        self.p.close()


def test_clean_stops_fire_no_last_will(broker: Any, tmp_path: Any) -> None:
    """Regression: in most SIGTERM stops the broker published the last will too (connection reset with
    its PUBACKs unread; mosquitto: "disconnected due to out of memory")."""
    with _probe(broker) as probe:
        probe.subscribe(f"{R}/proc/reg/#", qos=2)
        stops = 20
        for i in range(stops):
            n = node(broker, tmp_path, "clean", reg_timeout=0.3, state=str(tmp_path / "clean-state"))
            n.start()
            assert n.stop() == 0

        def manager_deletes() -> list[dict[str, Any]]:
            return [m.json()["data"] for m in probe.messages(f"{R}/proc/reg/#") if m.json().get("action") == "delete"
                    and m.json()["data"].get("type") == "manager"]
        wait_until(lambda: len(manager_deletes()) >= stops, 20, "every stop's manager delete")
        # fence: a will is published when the broker handles the closed socket, before it routes two
        # later round trips of ours
        for k in range(2):
            probe.publish(f"{R}/proc/reg/fence", b'{"action": "fence", "data": {}}')
            probe.wait_for(f"{R}/proc/reg/fence", lambda m, k=k: len(probe.messages(f"{R}/proc/reg/fence")) > k)
        deletes = manager_deletes()
        assert len(deletes) == stops
        assert [d for d in deletes if d.get("last_will")] == []
        # the measure works: a SIGKILL does fire it
        n = node(broker, tmp_path, "clean", reg_timeout=0.3, state=str(tmp_path / "clean-state"))
        n.start()
        n.kill()
        from ipc import cleanup_stale

        cleanup_stale()  # what the next start would do: a SIGKILLed supervisor cannot unlink its IPC objects
        probe.wait_for(f"{R}/proc/reg/#", lambda m: m.json()["data"].get("last_will") is True, timeout=10)


def test_a_graceful_restart_resurrects_the_modules_and_sigusr1_ends_them(broker: Any, tmp_path: Any) -> None:
    """Regression: SIGTERM (systemd's stop/restart) reported every module exited/killed, so the
    orchestrator had nothing to resurrect; docs/supervisor.md promised a restart resurrects them."""
    with OrchestratorProc(broker.port, str(tmp_path), ka_interval=1.0) as orch, _probe(broker) as probe:
        probe.subscribe(f"{R}/proc/control/#")
        n = node(broker, tmp_path, "resur").start()
        rt = n.runtime_uuid()
        wait_until(lambda: alive(orch, rt), 20, "registered")
        u = create_echo(probe, rt, "resur/io")
        assert answers(probe, "resur/io") == [u]
        assert n.stop() == 0  # SIGTERM
        assert "for a restart: modules stay resurrectable" in n.output()
        assert not [m for m in probe.messages(f"{R}/proc/control/{rt}") if m.json().get("action") == "exited"]
        wait_until(lambda: orch.get(f"/api/modules/{u}/")["status"] == "K", 10, "module killed (resurrectable)")
        n = node(broker, tmp_path, "resur").start()
        wait_until(lambda: orch.get(f"/api/modules/{u}/")["status"] == "A", 20, "module resurrected")
        assert answers(probe, "resur/io") == [u]
        # the stop that ends the modules
        assert n.proc is not None
        n.proc.send_signal(signal.SIGUSR1)
        assert n.wait_exit(20) == 0
        assert "ending the modules" in n.output()
        ex = probe.wait_for(f"{R}/proc/control/{rt}", lambda m: m.json().get("action") == "exited", timeout=10)
        assert ex[0].json()["data"]["status"]["reason"] == "killed"
        wait_until(lambda: orch.get(f"/api/modules/{u}/")["status"] == "D", 10, "module dead")
        n = node(broker, tmp_path, "resur").start()
        try:
            wait_until(lambda: alive(orch, rt), 20, "registered again")
            # the orchestrator resurrects in the same transaction that makes the runtime alive again
            assert orch.get(f"/api/modules/{u}/")["status"] == "D"  # not resurrected
            # fence: a new module on the topic answers, the ended one does not
            u2 = create_echo(probe, rt, "resur/io")
            assert answers(probe, "resur/io") == [u2]
        finally:
            n.stop()


def test_against_an_orchestrator_that_never_answers_the_manager_runtimes_still_register(broker: Any, tmp_path: Any) -> None:
    """The original orchestrator fails on its unique key for a known manager uuid and never answers; it
    answers runtimes. Here a probe plays that orchestrator."""
    with _probe(broker) as orig:
        def answer(c: Any, u: Any, msg: Any) -> None:
            import orjson
            m = orjson.loads(msg.payload)
            if m.get("type") == "resp" or (m.get("data") or {}).get("type") != "runtime" or m.get("action") != "create":
                return
            c.publish(msg.topic, orjson.dumps({"object_id": m["object_id"], "action": "create", "type": "resp",
                                               "data": {"result": "ok", "details": {"uuid": m["data"]["uuid"]}}}), qos=1)
        orig.client.on_message = answer
        orig.subscribe(f"{R}/proc/reg/+")  # returns on the SUBACK
        n = node(broker, tmp_path, "legacy", reg_timeout=1.0).start()
        try:
            wait_until(lambda: "registered runtime legacy" in n.output(), 20, "runtime registered")
            wait_until(lambda: "answered every runtime registration but not the manager's" in n.output(), 10, "said once")
            # the claim spans more than the longest retry interval (BACKOFF_MAX, 3 s) after that line
            time.sleep(4.0)
            # fence: two control messages handled by the node's loop after that span (two turns of its
            # loop: a retry due in the first would be logged by the second's line at the latest)
            rt = n.runtime_uuid()
            create(orig, rt, "fence-1")
            seen = wait_until(lambda: "(fence-1) in slot" in n.output() and n.output().count("fence-1"), 20,
                              "the node's loop took a create")
            delete(orig, rt, "fence-1")
            out = wait_until(lambda: n.output().count("fence-1") > seen and n.output(), 20, "the node's loop took a delete")
            assert out.count("answered every runtime registration but not the manager's") == 1
            tail = out[out.index("answered every runtime registration"):]
            assert "registration of manager legacy: attempt" not in tail
        finally:
            assert n.stop() == 0
