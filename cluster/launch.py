"""`runall`: create a module on every device's runtime through the orchestrator.

Sends one create per (device, file) on `{realm}/proc/control` (docs/protocol.md, "Creating modules") through the
client library (silverline.Client, the code path of `manage.py run`). `parent` is the runtime's
name (a template, default `{name}`), which the orchestrator resolves by uuid, name or suffix.
Afterwards it listens for a while and reports each request the orchestrator refused with its
reason (matched by module uuid), and each module that ended at once. It needs only the broker.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from common.config import Config
from common.wire import new_uuid
from silverline import Client, ClientError


class LaunchError(Exception):
    """The broker could not be reached or did not take the requests."""


@dataclass
class Request:
    device: str
    runtime: str
    file: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)  # the create message's `args` (as `manage.py run`)
    channels: list[dict[str, str]] = field(default_factory=list)
    uuid: str = field(default_factory=new_uuid)
    error: str | None = None

    def data(self) -> dict[str, Any]:
        return {"type": "module", "uuid": self.uuid, "name": self.name, "parent": self.runtime,
                "file": self.file, "apis": [], "args": self.args, "channels": self.channels}


def publish_creates(cfg: Config, requests: list[Request], *, listen_s: float = 2.0, timeout_s: float = 10.0) -> list[Request]:
    """Send the create requests (acknowledged by the broker), then hear refusals and immediate exits
    for `listen_s` seconds; `Request.error` says what went wrong, in one line."""
    try:
        with Client(cfg, timeout=timeout_s) as c:
            mods = c.create([r.data() for r in requests], wait=False, listen=listen_s)
    except ClientError as e:
        raise LaunchError(str(e)) from e
    for r, m in zip(requests, mods):
        if m.refused is not None:
            r.error = "refused by the orchestrator: " + re.sub(r"^request on \S+?(, module #\d+)?: ", "", m.refused)
        elif m.exit is not None and not m.exit.ok:
            r.error = f"failed at once: {m.exit}"
    return requests
