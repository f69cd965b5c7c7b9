"""Registration sequencing: the manager first, then the runtimes, each with its timeout."""
from __future__ import annotations

import socket
import time

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
    for host, retry in (("another-host", 2.5), (socket.gethostname(), None), (socket.gethostname(), 1e6)):
        refused.clear()
        r = registrar()
        r.reply(_refusal(sent[0][1]["object_id"], host, retry))
        assert len(refused) == 1, (host, retry)
