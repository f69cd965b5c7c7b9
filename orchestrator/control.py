"""Module control messages: `create`, `create_batch`, `delete` and the campaign actions on
`{realm}/proc/control`, and a runtime's `exited` on `{realm}/proc/control/RUNTIME`.
"""
from __future__ import annotations

from typing import Any

from common import schema
from common.exit_status import exit_status_of
from orchestrator.model import QUEUED
from orchestrator.placement import Placement
from orchestrator.state import Refused


class Control(Placement):
    """The control topics' requests (a part of `Orchestrator`, core.py)."""

    # -- module control -----------------------------------------------------------------
    def _on_control(self, req: schema.ControlRequestOpen) -> None:
        where = f"request on {self.topics.control()}"
        if isinstance(req, schema.CreateMsg):
            self._create_many([req.data], where)
        elif isinstance(req, schema.CreateBatchMsg):
            mods, parent = req.data.modules, req.data.parent
            if parent:  # the original CLI names the runtime once for the whole batch; a module's own parent wins
                for m in mods:
                    m.parent = m.parent or parent
            self._create_many(list(mods), where)
        elif isinstance(req, schema.CreateBatchOpenMsg):  # one of them is bad: each is checked by itself
            parent = req.data.parent
            self._create_many([m if not parent or not isinstance(m, dict) or m.get("parent") not in (None, "")
                               else {**m, "parent": parent} for m in req.data.modules], where)
        elif isinstance(req, schema.DeleteMsg):
            self._delete({"uuid": req.data.uuid}, where)
        elif isinstance(req, schema.CampaignMsg):
            self.campaigns.handle("create_campaign", {"campaign": req.data.campaign, "plan": req.data.plan}, where)
        elif isinstance(req, schema.ResumeMsg):
            self.campaigns.handle("resume_campaign", {"campaign": req.data.campaign}, where)

    def _on_runtime_control(self, rt_uuid: str, data: dict[str, Any]) -> None:
        """An `exited` (data: an open object whose `uuid` the schema checked)."""
        where = f"message on {self.topics.control(rt_uuid)}"
        uuid: str = data["uuid"]
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
