"""Module control messages: `create`, `create_batch`, `delete` and the campaign actions on
`{realm}/proc/control`, and a runtime's `exited` on `{realm}/proc/control/RUNTIME`.
"""
from __future__ import annotations

from typing import Any

from common.exit_status import exit_status_of
from common.wire import ProtocolError, require
from orchestrator.campaigns import ACTIONS as CAMPAIGN_ACTIONS
from orchestrator.deployments import ACTIONS as DEPLOY_ACTIONS
from orchestrator.model import QUEUED
from orchestrator.placement import Placement
from orchestrator.state import Refused


class Control(Placement):
    """The control topics' requests (a part of `Orchestrator`, core.py)."""

    # -- module control -----------------------------------------------------------------
    def _on_control(self, action: str, data: dict[str, Any]) -> None:
        where = f"request on {self.topics.control()}"
        if action == "create":
            self._create_many([data], where)
        elif action == "create_batch":
            mods = data.get("modules")
            if not isinstance(mods, list) or not all(isinstance(m, dict) for m in mods):
                raise ProtocolError(f"{where}: create_batch needs data.modules, a list of module objects")
            parent = data.get("parent")
            if parent is not None and parent != "":
                if not isinstance(parent, str):
                    raise ProtocolError(f"{where}: create_batch data.parent must be a runtime uuid, name or uuid suffix, got {parent!r}")
                # the original CLI names the runtime once for the whole batch; a module's own parent wins
                mods = [m if m.get("parent") not in (None, "") else {**m, "parent": parent} for m in mods]
            self._create_many(mods, where)
        elif action == "delete":
            self._delete(data, where)
        elif action in CAMPAIGN_ACTIONS:
            self.campaigns.handle(action, data, where)
        elif action in DEPLOY_ACTIONS:
            self.deployments.handle(action, data, where)
        else:
            raise ProtocolError(f"{where}: action must be create, create_batch, delete, create_campaign or"
                                f" resume_campaign, got {action!r}")

    def _on_runtime_control(self, rt_uuid: str, action: str, data: dict[str, Any]) -> None:
        where = f"message on {self.topics.control(rt_uuid)}"
        if action in ("create", "delete"):
            return  # orchestrator -> runtime traffic (another orchestrator's, or ours without no-local)
        if action != "exited":
            raise ProtocolError(f"{where}: action must be exited, got {action!r}")
        uuid = require(data, "uuid", str, where=where)
        m = self.mods.get(uuid)
        if m is None:
            raise Refused(f"{where}: exited for module {uuid}, which is unknown or already dead")
        if m.parent != rt_uuid:
            raise Refused(f"{where}: module {uuid} runs on {m.parent}, not on runtime {rt_uuid}")
        if m.status == QUEUED:
            raise Refused(f"{where}: module {uuid} is queued, it never started on runtime {rt_uuid}")
        status = exit_status_of(data.get("status"))  # the original's runtimes send the string "exited"
        rt = self.nodes.get(rt_uuid)
        self._module_dead(m, status)
        self.campaigns.on_exited(uuid, data)
        if rt is not None:
            rt.children.discard(uuid)
            rt.killed.discard(uuid)
            rt.stats.pop(uuid, None)
            self._changed(rt)
            self._fill(rt)
