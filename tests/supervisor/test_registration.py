"""Registration sequencing: the manager first, then the runtimes, each with its timeout."""
from __future__ import annotations

import logging
import socket
import time
from typing import Any

import orjson

from supervisor.registration import Registrar, manager_message


def test_registrar_manager_first_then_runtimes_with_timeouts() -> None:
    sent: list[tuple[str, dict]] = []
    done: list[bool] = []
    oks: list[str] = []
    r = Registrar(timeout=0.05, send=lambda u, m: sent.append((u, m)), on_reply=lambda u, d: oks.append(u), on_done=lambda: done.append(True))
    r.start(("M", "manager", manager_message("M", "n")), [("R1", "rt1", {"object_id": "r1"}), ("R2", "rt2", {"object_id": "r2"})])
    assert [u for u, _ in sent] == ["M"]
    assert r.reply({"object_id": sent[0][1]["object_id"], "type": "resp", "data": {"result": "ok", "details": {}}})
    assert [u for u, _ in sent] == ["M", "R1", "R2"]
    assert r.reply({"object_id": "r1", "type": "resp", "data": {"result": "ok"}})
    assert not done
    time.sleep(0.06)
    r.tick()  # R2 timed out: logged, then done
    assert done == [True] and oks == ["M", "R1"]
    assert not r.reply({"object_id": "unknown"})


def _refusal(object_id: str, host: str, retry_after: object) -> dict:
    details = {"reason": "duplicate", "holder": {"host": host, "pid": 1}, "description": "alive elsewhere"}
    if retry_after is not None:
        details["retry_after"] = retry_after
    return {"object_id": object_id, "type": "resp", "data": {"result": "error", "details": details}}


def test_a_duplicate_refusal_from_this_host_is_waited_out_once() -> None:
    """Holder on this host with a known expiry: ask again after it (an earlier run gone without a
    stop); a second refusal is final. Another host, or no expiry: final at once."""
    now = [100.0]
    sent: list[tuple[str, dict]] = []
    refused: list[str] = []

    def registrar() -> Registrar:
        sent.clear()
        r = Registrar(timeout=5, send=lambda u, m: sent.append((u, m)), on_reply=lambda u, d: None,
                      on_done=lambda: None, on_refused=refused.append, clock=lambda: now[0])
        r.start(("M", "manager", manager_message("M", "n")), [])
        return r

    r = registrar()
    oid = sent[0][1]["object_id"]
    assert r.reply(_refusal(oid, socket.gethostname(), 2.5)) and refused == []
    assert r.next_deadline() == 100.0 + 2.5 + 1.0
    now[0] += 3.4
    r.tick()
    assert len(sent) == 1  # not before the holder's expiry (+ 1 s)
    now[0] += 0.2
    r.tick()
    assert len(sent) == 2
    r.reply(_refusal(oid, socket.gethostname(), 2.5))
    assert len(refused) == 1  # refused again: the holder is alive
    # two attempts a moment apart (a re-send, a hurried round) both refused: the second refusal
    # answers the attempt before the wait, not the one after it, and is not final
    refused.clear()
    r = registrar()
    oid = sent[0][1]["object_id"]
    r.reply(_refusal(oid, socket.gethostname(), 2.5))
    now[0] += 0.02
    assert r.reply(_refusal(oid, socket.gethostname(), 2.5)) and refused == []
    now[0] += 3.5
    r.tick()
    assert len(sent) == 2  # asked again after the wait
    r.reply(_refusal(oid, socket.gethostname(), 2.5))
    assert len(refused) == 1  # and that answer is final
    for host, retry in (("another-host", 2.5), (socket.gethostname(), None), (socket.gethostname(), 1e6)):
        refused.clear()
        r = registrar()
        r.reply(_refusal(sent[0][1]["object_id"], host, retry))
        assert len(refused) == 1, (host, retry)


def test_a_runtime_that_reports_is_held_until_its_worker_reports_or_timeout() -> None:
    """REPORTS_REGISTRATION (the benchmarking runtimes' engine list): the orchestrator sees the runtime
    once, with the report; a worker that does not report in `timeout` is registered without it and
    again with it when it comes; an unchanged report registers nothing again."""
    now = [100.0]
    sent: list[tuple[str, dict]] = []
    done: list[bool] = []

    def ok(oid: str) -> None:
        assert r.reply({"object_id": oid, "type": "resp", "data": {"result": "ok", "details": {}}})

    r = Registrar(timeout=5, send=lambda u, m: sent.append((u, m)), on_reply=lambda u, d: None, on_done=lambda: done.append(True),
                  clock=lambda: now[0], unreported=lambda u: {"object_id": f"{u}-bare", "data": {"engines": None}}, report_wait=5)
    r.start(("M", "manager", manager_message("M", "n")), [("R1", "rt1", None), ("R2", "rt2", {"object_id": "r2", "data": {}})])
    ok(sent[0][1]["object_id"])
    ok("r2")
    assert [u for u, _ in sent] == ["M", "R2"] and r.waiting_for() == "waiting for 1 worker(s) to report before registering"
    assert r.next_deadline() == 105.0
    now[0] += 4.9
    r.tick()
    assert not done and len(sent) == 2  # held: not settled, nothing sent
    r.report("R1", {"object_id": "r1", "data": {"engines": ["wasmtime"]}})
    assert sent[-1] == ("R1", {"object_id": "r1", "data": {"engines": ["wasmtime"]}})
    ok("r1")
    assert done == [True] and len(sent) == 3
    # a second round (a reconnect) where the worker is slow: registered without, then with the report
    sent.clear()
    r.start(("M", "manager", manager_message("M", "n")), [("R1", "rt1", None)])
    ok(sent[0][1]["object_id"])
    now[0] += 5.0
    r.tick()
    assert sent[-1] == ("R1", {"object_id": "R1-bare", "data": {"engines": None}})
    ok("R1-bare")
    r.report("R1", {"object_id": "r1b", "data": {"engines": ["wasmtime"]}})
    assert sent[-1][1]["object_id"] == "r1b"  # registered again with the report
    ok("r1b")
    r.report("R1", {"object_id": "r1c", "data": {"engines": ["wasmtime"]}})  # a restarted worker, same report
    assert sent[-1][1]["object_id"] == "r1b"
    r.drop("R1")  # FATAL: it leaves the round
    assert r.runtimes == []


def test_a_worker_report_is_merged_over_the_class_extras_and_a_bad_one_is_logged(caplog: Any) -> None:
    """NodeRegistration over real rings (fakes.Rig): the held runtime's registration is published
    once the router hands over the worker's RT_REGISTER; a malformed report is an error line and
    the runtime registers with its class extras only."""
    from ipc import messages
    from runtimes.testing import EchoRuntime
    from supervisor.registration import NodeRegistration
    from tests.supervisor.fakes import REALM, Rig

    class Reporting(EchoRuntime):
        REPORTS_REGISTRATION = True

        @classmethod
        def registration(cls, settings: dict[str, Any]) -> dict[str, Any]:
            return {"metadata": {"static": 1, "engines": []}}

    rig = Rig(2)
    try:
        for w in rig.workers:
            w.cls = Reporting
        reg = NodeRegistration(rig.outbox, rig.workers, rig.ops, platform_extra={}, timeout=1.0, on_registered=lambda: None)
        rig.router.on_register = reg.report
        reg.start()
        manager = rig.link.on(f"{REALM}/proc/reg/mgr")[0]
        reg.message(f"{REALM}/proc/reg/mgr", orjson.dumps({"object_id": manager["object_id"], "type": "resp",
                                                              "data": {"result": "ok"}}))
        assert rig.link.on(f"{REALM}/proc/reg/rt-0") == [] and rig.link.on(f"{REALM}/proc/reg/rt-1") == []  # held
        rig.from_worker(0, messages.ctrl(0), messages.RT_REGISTER, orjson.dumps({"metadata": {"engines": ["wasmtime"]}}))
        (r0,) = rig.link.on(f"{REALM}/proc/reg/rt-0")
        assert r0["data"]["metadata"]["engines"] == ["wasmtime"] and r0["data"]["metadata"]["static"] == 1
        with caplog.at_level(logging.ERROR):
            rig.from_worker(1, messages.ctrl(0), messages.RT_REGISTER, b"[1, 2]")
        (r1,) = rig.link.on(f"{REALM}/proc/reg/rt-1")
        assert r1["data"]["metadata"]["engines"] == [] and "registration report of the worker ignored" in caplog.text
    finally:
        rig.close()


def test_unanswered_registrations_back_off_with_jitter_to_thirty_seconds() -> None:
    """Repeats: 1 s doubling to 3 s while the registration waits (`timeout`), then on to 30 s, each
    delay x 0.75-1.25 (issue #26: a fleet at a flat 3 s flooded a slow orchestrator with repeats)."""
    from supervisor.registrar import JITTER, UNANSWERED_MAX

    for draw in (0.0, 0.5, 0.999):
        now = [0.0]
        sent: list[float] = []
        r = Registrar(timeout=5, send=lambda u, m: sent.append(now[0]), on_reply=lambda u, d: None,
                      on_done=lambda: None, clock=lambda: now[0], rng=lambda: draw)
        r.start(("M", "manager", manager_message("M", "n")), [])
        while now[0] < 400:
            d = r.next_deadline()
            assert d is not None
            now[0] = d
            r.tick()
        gaps = [b - a for a, b in zip(sent, sent[1:])]
        f = 1 - JITTER + 2 * JITTER * draw
        assert abs(gaps[0] - 1.0 * f) < 1e-9 and abs(gaps[1] - 2.0 * f) < 1e-9, gaps
        assert all(b >= a - 1e-9 for a, b in zip(gaps, gaps[1:])), gaps  # never faster
        assert all(g <= 3.0 * f + 1e-9 for s0, g in zip(sent, gaps) if s0 < 5), gaps  # 3 s at most while waiting
        assert abs(max(gaps) - UNANSWERED_MAX * f) < 1e-9, gaps  # then on to 30 s
        assert len(sent) <= 30  # 400 s of an unanswered registration: 16-30 sends, not 133 (a flat 3 s)


def test_a_busy_orchestrator_back_on_the_same_instance_hurries_what_waits(caplog: Any) -> None:
    """Its `online` again (same instance: a broker restart) while a registration waits in backoff:
    asked again at once, not after up to 30 s."""
    from supervisor.registrar import Registrar as R

    now = [0.0]
    sent: list[float] = []
    r = R(timeout=5, send=lambda u, m: sent.append(now[0]), on_reply=lambda u, d: None, on_done=lambda: None,
          clock=lambda: now[0])
    r.start(("M", "manager", manager_message("M", "n")), [])
    now[0] = 20.0
    r.tick()
    assert r.unanswered()
    n = len(sent)
    r.again("orchestrator back")
    assert len(sent) == n + 1 and sent[-1] == 20.0
