"""A plain warning at start when a node or the orchestrator talks to a broker beyond loopback without
credentials or TLS (issue #25): what anyone who reaches such a broker can do, in one line."""
from __future__ import annotations

import ipaddress
import logging

from common.config import Config

log = logging.getLogger("mq")


def is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure(cfg: Config) -> str | None:
    """What is missing on the way to a non-loopback broker (None: loopback, or credentials and TLS set)."""
    if is_loopback_host(cfg.mqtt):
        return None
    missing = [] if cfg.mqtt_username else ["no credentials (mqtt_username, pwd)"]
    if not cfg.use_ssl:
        missing.append("no TLS (use_ssl)")
    return " and ".join(missing) or None


def warn_unauthenticated(cfg: Config, who: str) -> bool:
    """Log the warning when `exposure` finds something missing; True when it did."""
    what = exposure(cfg)
    if what is None:
        return False
    if cfg.mqtt_username:
        log.warning("%s: broker %s:%d is beyond loopback and the connection has %s: the password and every message "
                    "cross the network in clear (docs/security.md, \"Fleet\")", who, cfg.mqtt, cfg.mqtt_port, what)
    else:
        log.warning("%s: broker %s:%d is beyond loopback and the connection has %s: anyone who reaches the broker can "
                    "create modules on any node, read their output and take nodes down (docs/security.md, \"Fleet\"; "
                    "manage.py acl)", who, cfg.mqtt, cfg.mqtt_port, what)
    return True
