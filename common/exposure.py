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


def secrets_in_roots(roots: list[str], secrets: list[str]) -> list[tuple[str, str]]:
    """(root, secret) for every secret path (config file, password file, state directory) that lies in a
    module root: a create could read it (issue #25)."""
    import os

    out = []
    for r in roots:
        rr = os.path.realpath(os.path.expanduser(r))
        for s in secrets:
            rs = os.path.realpath(os.path.expanduser(s))
            if os.path.commonpath([rr, rs]) == rr:
                out.append((rr, s))
    return out


def warn_secrets_in_roots(roots: list[str], secrets: list[str], who: str) -> int:
    """One warning per secret inside a module root; how many."""
    found = secrets_in_roots(roots, [s for s in secrets if s])
    for root, secret in found:
        log.warning("%s: %s lies inside the module root %s: a module could read it; move it, or name narrower "
                    "module roots (--module-root / module_root)", who, secret, root)
    return len(found)
