"""Declared deployments (issue #27): the schema of one deployment, shared by `manage.py apply`
(checks a file before sending it) and the orchestrator (checks what it receives; it never trusts
the sender). docs/orchestrator.md, "Deployments", documents it.

A deployment, after `normalize`:
    {"name": str, "file": str, "args": [str...], "env": {str: str}, "dirs": [str...],
     "channels": [{"path", "mode", "topic"}...], "apis": [str...], "count": int >= 0,
     "placement": {"runtimes": [str...], "kind": "plain"|"benchmark"|None, "apis": [str...],
                   "platform": {str: str}},
     "restart": "always"|"on-failure"|"never", "backoff": [initial s, max s]}
"""
from __future__ import annotations

import re
import shlex
from typing import Any

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
RESTART = ("always", "on-failure", "never")
KINDS = ("plain", "benchmark")
KEYS = {"name", "file", "args", "env", "dirs", "channels", "apis", "count", "placement", "restart", "backoff"}
PLACEMENT_KEYS = {"runtimes", "kind", "apis", "platform"}
MAX_COUNT = 10_000


class SpecError(ValueError):
    """A deployment that cannot be taken; the text says where and what is expected."""


def _strs(v: Any, where: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v):
        raise SpecError(f"{where} must be a list of strings, got {v!r}")
    return [str(x) for x in v]


def _env(v: Any, where: str) -> dict[str, str]:
    if v is None:
        return {}
    if isinstance(v, list):
        out: dict[str, str] = {}
        for item in _strs(v, where):
            k, eq, val = item.partition("=")
            if not eq or not k:
                raise SpecError(f"{where}: {item!r} must be KEY=VALUE")
            out[k] = val
        return out
    if not isinstance(v, dict) or not all(isinstance(k, str) and k and "=" not in k for k in v):
        raise SpecError(f"{where} must be a mapping of names to values (or a list of KEY=VALUE), got {v!r}")
    return {k: "" if x is None else str(x) for k, x in v.items()}


def normalize(d: Any, where: str = "deployment") -> dict[str, Any]:
    """One deployment, checked and in its full form (defaults filled in); SpecError if wrong."""
    if not isinstance(d, dict):
        raise SpecError(f"{where} must be a mapping, got {type(d).__name__}")
    name = d.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise SpecError(f"{where}: name must be 1-63 letters, digits, '_', '.' or '-' (not first), got {name!r}")
    where = f"deployment {name!r}"
    unknown = sorted(set(d) - KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(KEYS))})")
    file = d.get("file")
    if not isinstance(file, str) or not file:
        raise SpecError(f"{where}: file (the module's program, as the runtime sees the path) is required")
    args = d.get("args")
    if isinstance(args, str):
        try:
            args = shlex.split(args)
        except ValueError as e:
            raise SpecError(f"{where}: args {args!r}: {e}") from None
    count = d.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_COUNT:
        raise SpecError(f"{where}: count must be an integer from 0 to {MAX_COUNT}, got {count!r}")
    restart = d.get("restart", "always")
    if restart not in RESTART:
        raise SpecError(f"{where}: restart must be one of {', '.join(RESTART)}, got {restart!r}")
    backoff = d.get("backoff", [1.0, 30.0])
    if (not isinstance(backoff, list) or len(backoff) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in backoff)
            or not 0 < backoff[0] <= backoff[1] <= 3600):
        raise SpecError(f"{where}: backoff must be [initial, max] seconds, 0 < initial <= max <= 3600, got {backoff!r}")
    channels = d.get("channels") or []
    if not isinstance(channels, list) or not all(
            isinstance(c, dict) and isinstance(c.get("path"), str) and c.get("mode", "rw") in ("r", "w", "rw")
            for c in channels):
        raise SpecError(f"{where}: channels must be a list of {{path, mode: r|w|rw, topic}}, got {channels!r}")
    p = d.get("placement") or {}
    if not isinstance(p, dict):
        raise SpecError(f"{where}: placement must be a mapping (runtimes, kind, apis, platform), got {p!r}")
    bad = sorted(set(p) - PLACEMENT_KEYS)
    if bad:
        raise SpecError(f"{where}: unknown placement key {bad[0]!r} (known: {', '.join(sorted(PLACEMENT_KEYS))})")
    kind = p.get("kind")
    if kind is not None and kind not in KINDS:
        raise SpecError(f"{where}: placement.kind must be plain or benchmark, got {kind!r}")
    plat = p.get("platform") or {}
    if not isinstance(plat, dict) or not all(isinstance(k, str) for k in plat):
        raise SpecError(f"{where}: placement.platform must map platform keys to values, got {plat!r}")
    return {
        "name": name, "file": file, "args": _strs(args, f"{where}: args"), "env": _env(d.get("env"), f"{where}: env"),
        "dirs": _strs(d.get("dirs"), f"{where}: dirs"),
        "channels": [{"path": c["path"], "mode": c.get("mode", "rw"), "topic": c.get("topic") or c["path"]} for c in channels],
        "apis": _strs(d.get("apis"), f"{where}: apis"), "count": count,
        "placement": {"runtimes": _strs(p.get("runtimes"), f"{where}: placement.runtimes"), "kind": kind,
                      "apis": _strs(p.get("apis"), f"{where}: placement.apis"),
                      "platform": {k: str(v) for k, v in plat.items()}},
        "restart": restart, "backoff": [float(backoff[0]), float(backoff[1])],
    }


def documents(doc: Any, where: str = "file") -> list[dict[str, Any]]:
    """The deployments of a parsed file: one deployment, a list of them, or {"deployments": [...]}."""
    if isinstance(doc, dict) and "deployments" in doc:
        doc = doc["deployments"]
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise SpecError(f"{where}: no deployment in it")
    out = [normalize(d, f"{where}: deployment #{i + 1}") for i, d in enumerate(items)]
    names = [d["name"] for d in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecError(f"{where}: deployment {dup[0]!r} is declared twice")
    return out


def redacted(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as REST shows it: env names only, never their values (they may be secrets); the same
    form the REST server's own redaction gives (orchestrator/rest.py), so applying it again changes nothing."""
    return {**spec, "env": {k: "(redacted)" for k in sorted(spec.get("env", {}))}}
