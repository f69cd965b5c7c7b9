"""Registration of the manager and its runtimes with the orchestrator (PROTOCOL.md section 1).

The manager registers first; when the orchestrator answers (or the wait times out, which is logged
as an error and otherwise ignored, as in the seed) every runtime registers, each waiting for its own
answer. Nothing here blocks: the supervisor's loop feeds replies in and calls `tick()`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from common.wire import envelope

log = logging.getLogger("mgr")


def manager_message(uuid: str, name: str, action: str = "create") -> dict[str, Any]:
    data: dict[str, Any] = {"type": "manager", "uuid": uuid, "name": name}
    return envelope(action, data)


def runtime_message(*, uuid: str, name: str, runtime_type: str, max_nmodules: int, apis: list[str],
                    platform: dict[str, Any], metadata: dict[str, Any], parent: str) -> dict[str, Any]:
    return envelope("create", {
        "type": "runtime", "uuid": uuid, "name": name, "runtime_type": runtime_type,
        "max_nmodules": max_nmodules, "apis": list(apis), "platform": platform,
        "metadata": metadata, "parent": parent,
    })


def runtime_delete_message(uuid: str, name: str) -> dict[str, Any]:
    return envelope("delete", {"type": "runtime", "uuid": uuid, "name": name})


@dataclass
class Pending:
    uuid: str
    what: str  # "manager test" / "runtime test.echo"
    deadline: float


class Registrar:
    """Drives one registration round (manager, then runtimes); restarted after every reconnect."""

    def __init__(self, *, timeout: float, send: Callable[[str, dict[str, Any]], None],
                 on_reply: Callable[[str, dict[str, Any]], None], on_done: Callable[[], None]) -> None:
        self.timeout = timeout
        self.send = send  # (uuid, message): publish on proc/reg/{uuid}
        self.on_reply = on_reply  # (uuid, details) of an "ok" answer
        self.on_done = on_done
        self.pending: dict[str, Pending] = {}
        self.phase = "idle"  # idle -> manager -> runtimes -> done
        self._runtimes: list[tuple[str, str, dict[str, Any]]] = []

    def start(self, manager: tuple[str, str, dict[str, Any]], runtimes: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Each item is (uuid, description, message)."""
        self.pending.clear()
        self._runtimes = list(runtimes)
        self.phase = "manager"
        self._post(*manager)

    def _post(self, uuid: str, what: str, msg: dict[str, Any]) -> None:
        self.pending[msg["object_id"]] = Pending(uuid, what, time.monotonic() + self.timeout)
        self.send(uuid, msg)

    def reply(self, msg: dict[str, Any]) -> bool:
        """An answer on a reg topic; True when it was one we waited for."""
        p = self.pending.pop(str(msg.get("object_id")), None)
        if p is None:
            return False
        raw = msg.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        result = data.get("result")
        rd = data.get("details")
        details: dict[str, Any] = rd if isinstance(rd, dict) else {}
        if result == "ok":
            log.info("registered %s", p.what)
            self.on_reply(p.uuid, details)
        else:
            log.error("orchestrator refused the registration of %s: %s", p.what, details or data)
        self._advance()
        return True

    def tick(self) -> None:
        now = time.monotonic()
        for oid, p in list(self.pending.items()):
            if now >= p.deadline:
                del self.pending[oid]
                log.error("no answer from the orchestrator to the registration of %s within %.1fs; going on", p.what, self.timeout)
        self._advance()

    def next_deadline(self) -> float | None:
        return min((p.deadline for p in self.pending.values()), default=None)

    def _advance(self) -> None:
        if self.pending:
            return
        if self.phase == "manager":
            self.phase = "runtimes"
            for item in self._runtimes:
                self._post(*item)
            if self.pending:
                return
        if self.phase == "runtimes":
            self.phase = "done"
            self.on_done()
