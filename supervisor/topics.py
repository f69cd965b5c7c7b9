"""Channel topic rules of PROTOCOL.md section 2: `$SL/` rewriting, grants, wildcard matching.

Pure functions, no dependencies: imported by the supervisor and by workers (which may run
under Python 3.10), so a runtime can refuse a channel before asking the supervisor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FLAG_READ = 0b0001
FLAG_WRITE = 0b0010
FLAG_QOS1 = 0b0100
FLAG_QOS2 = 0b1000

SL_PREFIX = "$SL/"


class ChannelError(ValueError):
    """A channel that may not be opened; the text says why."""


@dataclass(frozen=True)
class Grant:
    """One `channels[]` entry of a create message: module topics under `path` map to `topic`."""

    path: str
    mode: str  # "r", "w" or "rw"
    topic: str


def parse_grants(channels: Any, *, where: str = "channels") -> list[Grant]:
    """Validate the `channels` list of a create message (ProtocolError-style ValueError on bad input)."""
    if channels is None:
        return []
    if not isinstance(channels, list):
        raise ValueError(f"{where}: must be a list, got {type(channels).__name__}")
    out: list[Grant] = []
    for i, c in enumerate(channels):
        if not isinstance(c, dict):
            raise ValueError(f"{where}[{i}]: must be an object, got {type(c).__name__}")
        for key in ("path", "mode", "topic"):
            if not isinstance(c.get(key), str):
                raise ValueError(f"{where}[{i}]: key {key!r} must be a string")
        if c["mode"] not in ("r", "w", "rw"):
            raise ValueError(f"{where}[{i}]: mode must be 'r', 'w' or 'rw', got {c['mode']!r}")
        out.append(Grant(c["path"], c["mode"], c["topic"]))
    return out


def qos_of(flags: int) -> int:
    """QoS of a channel from its flags (QoS2 wins over QoS1)."""
    if flags & FLAG_QOS2:
        return 2
    if flags & FLAG_QOS1:
        return 1
    return 0


def has_wildcard(topic: str) -> bool:
    return "+" in topic or "#" in topic


def resolve(topic: str, flags: int, *, realm: str, module_uuid: str, grants: list[Grant] | None) -> str:
    """The MQTT topic a module's channel `topic` stands for, or ChannelError.

    `$SL/rest` -> `{realm}/rest/{module_uuid}` (always allowed). Otherwise, when `grants` is not
    None, the topic must start with a granted `path` whose mode covers the flags, and that prefix
    is replaced by the grant's `topic`. `grants=None` means no access control (trusted callers).
    """
    if not topic:
        raise ChannelError("empty topic")
    if not flags & (FLAG_READ | FLAG_WRITE):
        raise ChannelError(f"channel on {topic!r} is neither readable nor writable (flags {flags:#06b})")
    if topic.startswith(SL_PREFIX):
        rest = topic[len(SL_PREFIX):].strip("/")
        out = f"{realm}/{rest}/{module_uuid}" if rest else f"{realm}/{module_uuid}"
    elif grants is None:
        out = topic
    else:
        out = ""
        for g in sorted(grants, key=lambda g: -len(g.path)):  # longest granted prefix wins
            if topic.startswith(g.path):
                if flags & FLAG_READ and "r" not in g.mode:
                    raise ChannelError(f"topic {topic!r} is granted write-only (path {g.path!r}), cannot read")
                if flags & FLAG_WRITE and "w" not in g.mode:
                    raise ChannelError(f"topic {topic!r} is granted read-only (path {g.path!r}), cannot write")
                out = g.topic + topic[len(g.path):]
                break
        if not out:
            raise ChannelError(f"topic {topic!r} is not granted to this module (its create message grants {[g.path for g in grants] or 'nothing'}; $SL/ is always allowed)")
    if flags & FLAG_WRITE and has_wildcard(out):
        raise ChannelError(f"a writable channel cannot have a wildcard topic ({out!r})")
    return out


def matches(sub: str, topic: str) -> bool:
    """MQTT topic filter matching (`+` one level, `#` the rest, `$` topics not matched by wildcards at the root)."""
    if sub == topic:
        return True
    if topic.startswith("$") and sub[:1] in ("+", "#"):
        return False
    s = sub.split("/")
    t = topic.split("/")
    for i, part in enumerate(s):
        if part == "#":
            return i == len(s) - 1
        if i >= len(t):
            return False
        if part != "+" and part != t[i]:
            return False
    return len(s) == len(t)
