"""Channel topic rules (docs/protocol.md, "Channels"): `$SL/` rewriting, grants, wildcard matching.

Pure functions (a grant is the schema's `common.schema.Grant`, checked with the create): imported
by the supervisor and by workers (which may run under Python 3.10), so a runtime can refuse a
channel before asking the supervisor.
"""
from __future__ import annotations

from typing import Any

from common import schema
from common.schema import Grant as Grant  # re-exported: one `channels[]` entry of a create
from ipc.messages import FLAG_QOS1 as FLAG_QOS1, FLAG_QOS2 as FLAG_QOS2, FLAG_READ as FLAG_READ, FLAG_WRITE as FLAG_WRITE, qos_of as qos_of  # re-exported

SL_PREFIX = "$SL/"


class ChannelError(ValueError):
    """A channel that may not be opened; the text says why."""


def parse_grants(channels: Any, *, where: str = "channels") -> list[Grant]:
    """A `channels` list outside a create message (tests, tools); a ValueError naming the entry and key.
    A create's own are checked with it, by the schema (common/schema.py)."""
    try:
        return schema.check_grants(channels)
    except ValueError as e:
        raise ValueError(f"{where}{e}") from None


def has_wildcard(topic: str) -> bool:
    return "+" in topic or "#" in topic


STDIO = SL_PREFIX + "proc/stdio"  # a module's stdin/stdout (runtimes/wasm/host.py)


def resolve(topic: str, flags: int, *, realm: str, module_uuid: str, grants: list[Grant] | None,
            stdio_runtime: str | None = None) -> str:
    """The MQTT topic a module's channel `topic` stands for, or ChannelError.

    `$SL/rest` -> `{realm}/rest/{module_uuid}` (always allowed); with `stdio_runtime`, the module's
    stdio `$SL/proc/stdio` -> `{realm}/proc/stdio/{stdio_runtime}/{module_uuid}` (per node, docs/protocol.md). Otherwise, when `grants` is not
    None, the topic must start with a granted `path` whose mode covers the flags, and that prefix
    is replaced by the grant's `topic`. `grants=None` means no access control (trusted callers).
    """
    if not topic:
        raise ChannelError("empty topic")
    if not flags & (FLAG_READ | FLAG_WRITE):
        raise ChannelError(f"channel on {topic!r} is neither readable nor writable (flags {flags:#06b})")
    if stdio_runtime and topic.rstrip("/") == STDIO:
        out = f"{realm}/proc/stdio/{stdio_runtime}/{module_uuid}"
    elif topic.startswith(SL_PREFIX):
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
    check_mqtt_topic(out)
    return out


MAX_TOPIC_BYTES = 65535  # MQTT encodes a topic with a 16-bit length


def check_mqtt_topic(topic: str) -> None:
    """ChannelError unless the broker (and paho) accept `topic` as a topic filter.

    Regressions (chaos fuzz, channel_open): an over-long or malformed filter used to get into the
    channel table, paho refused the subscribe, and the later unsubscribe killed the supervisor; a
    control character made mosquitto drop the node's connection after every re-subscribe.
    """
    n = len(topic.encode("utf-8", "surrogatepass"))
    if n > MAX_TOPIC_BYTES:
        raise ChannelError(f"topic of {n} bytes is longer than MQTT allows ({MAX_TOPIC_BYTES} bytes)")
    if "\x00" in topic:
        raise ChannelError("topic contains a NUL character")
    try:
        topic.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ChannelError(f"topic is not valid UTF-8 ({e.reason})") from e
    for ch in topic:
        c = ord(ch)
        # mosquitto drops the connection of a client that sends these (MQTT 5 section 1.5.4), and a
        # re-subscribe after every reconnect would drop it again, forever
        if c < 0x20 or 0x7F <= c <= 0x9F or 0xFDD0 <= c <= 0xFDEF or (c & 0xFFFE) == 0xFFFE:
            raise ChannelError(f"topic {topic!r} contains the control or non-character U+{c:04X}, which MQTT brokers refuse")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ChannelError(f"invalid MQTT topic filter {topic!r}: '#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise ChannelError(f"invalid MQTT topic filter {topic!r}: '+' must be a whole level")


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
