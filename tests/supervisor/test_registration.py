"""Registration sequencing: the manager first, then the runtimes, each with its timeout."""
from __future__ import annotations

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
