"""Broker addresses (`broker_list`: one, or a list to fail over between) and the mosquitto settings
a fleet needs (docs/orchestrator.md, "Broker settings"): written into the broker configurations this
repository generates (`make run`'s, chaos and bench fleets) and quoted in the docs for operators.

Why each one (issue #26 item 2):
- `max_queued_messages`: mosquitto queues QoS 1/2 messages per client while the client is away or
  has its in-flight window full; beyond the limit (default 1000) it drops new ones for that client
  ("Outgoing messages are being dropped"). The orchestrator takes a burst of creates, a registration
  storm or everything sent while it restarts through one client: a burst of 2,000 creates lost
  14-31 % at the default. mosquitto has one limit for every client, so it is set for all; memory
  is bounded by `max_queued_bytes` instead.
- `max_queued_bytes`: 256 MiB per client at most (the queue is in the broker's memory).
- `persistence` + `autosave_interval`: the orchestrator's and the collector's sessions (with their
  subscriptions and queues) survive a broker restart; without it a node that stops cleanly while
  the orchestrator is still reconnecting loses its goodbye (its runtimes stay alive until keepalive
  expiry, and a node restarted at once is refused as a duplicate).
- `sys_interval`: the `$SYS/broker/...` counters every 2 s; the orchestrator logs the broker's
  drop counter when it grows (orchestrator/broker_drops.py).
"""
from __future__ import annotations

MAX_QUEUED_MESSAGES = 100_000
MAX_QUEUED_BYTES = 256 * 1024 * 1024
AUTOSAVE_INTERVAL = 10  # seconds; mosquitto also writes its database when it stops cleanly
SYS_INTERVAL = 2


def mosquitto_lines(persistence_dir: str | None) -> list[str]:
    """mosquitto.conf lines (with comments) for a fleet; `persistence_dir` None: no persistence."""
    lines = [
        "# silverline fleet settings (common/broker.py; docs/orchestrator.md, \"Broker settings\")",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}  # per client: the orchestrator's bursts and storms",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"sys_interval {SYS_INTERVAL}  # $SYS counters: the orchestrator logs broker-side drops",
    ]
    if persistence_dir is not None:
        lines += ["persistence true  # sessions survive a broker restart",
                  f"persistence_location {persistence_dir.rstrip('/')}/",
                  f"autosave_interval {AUTOSAVE_INTERVAL}"]
    else:
        lines.append("persistence false")
    # mosquitto takes no comment after a value: keep them on lines of their own
    out: list[str] = []
    for line in lines:
        value, _, comment = line.partition("  # ")
        if comment:
            out.append(f"# {comment}")
        out.append(value)
    return out


MQTT311 = "mqtt311://"  # a broker spoken to in MQTT 3.1.1 (by the nodes; docs/cluster.md)


def broker_protocols(mqtt: str) -> list[int]:
    """The MQTT version for each broker of `broker_list(mqtt, ...)`: 4 (3.1.1) for `mqtt311://HOST...`, else 5."""
    return [4 if x.strip().startswith(MQTT311) else 5 for x in mqtt.split(",") if x.strip()]


def broker_list(mqtt: str, port: int) -> list[tuple[str, int]]:
    """The brokers of config key `mqtt` (or `--mqtt`): one host, or a comma-separated list of
    `HOST[:PORT]` (PORT default `port`, the config's `mqtt_port`), tried in that order; a client
    that loses one goes on to the next (docs/cluster.md, "A list of brokers: failover"). An IPv6
    address with a port is written `[ADDR]:PORT`. ValueError when nothing is named or a port is bad."""
    out: list[tuple[str, int]] = []
    for item in (x.strip() for x in mqtt.split(",")):
        if not item:
            continue
        item = item[len(MQTT311):] if item.startswith(MQTT311) else item.removeprefix("mqtt://")
        host, p = item, port
        if item.startswith("["):
            addr, _, rest = item[1:].partition("]")
            host = addr
            if rest.startswith(":"):
                p = _port(rest[1:], item)
        elif item.count(":") == 1:
            host, _, ps = item.partition(":")
            p = _port(ps, item)
        if not host:
            raise ValueError(f"broker {item!r}: no host")
        out.append((host, p))
    if not out:
        raise ValueError(f"no MQTT broker named in {mqtt!r}")
    return out


def _port(text: str, item: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"broker {item!r}: the port must be a number from 1 to 65535")
    return int(text)
