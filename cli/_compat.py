"""What the operator scripts need to work with the original SilverLine tools as well as ours
(docs/compatibility.md, "Facts about the original tools").

- The original's option spellings (`run --dirs`, `stop --modules`, `configure --mqtt_pwd`, ...)
  are rewritten to ours before parsing (`spellings`); each script lists them in its `-h`.
- The original orchestrator's REST records are Django `model_to_dict` rows: no `type` field,
  no manager name, no `nqueued`; modules may say `filename` (older versions) instead of `file`.
- Its error reports go to `{realm}/proc/log/orchestrator` with `data: {"desc", "data"}`;
  ours to `{realm}/proc/log` and there too with `data: {"description", "topic", "data"}`.
- The original's runtimes report `exited` with `status: "exited"` (a string), ours an object:
  `common.exit_status.exit_status_of` reads both.
"""
from __future__ import annotations

from typing import Any

__all__ = ["spellings", "is_runtime", "node_of", "nqueued", "module_file", "error_text"]


def spellings(argv: list[str], aliases: dict[str, str]) -> list[str]:
    """`argv` with the original's option names (keys of `aliases`) replaced by ours, also in
    the `--name=value` form; everything after `--` is left alone."""
    out: list[str] = []
    for i, tok in enumerate(argv):
        if tok == "--":
            return out + argv[i:]
        name, eq, value = tok.partition("=")
        if name in aliases:
            tok = aliases[name] + eq + value
        out.append(tok)
    return out


def is_runtime(entry: dict[str, Any]) -> bool:
    """A runtime record of ours (`type: "runtime"`) or of the original (no `type`, has `runtime_type`)."""
    if "type" in entry:
        return bool(entry["type"] == "runtime")
    return "runtime_type" in entry or "apis" in entry


def node_of(rt: dict[str, Any]) -> str:
    """The runtime's node: our `manager` name, else the original's `parent` (the manager's uuid)."""
    return str(rt.get("manager") or rt.get("parent") or "-")


def nqueued(rt: dict[str, Any]) -> int:
    """How many modules wait on the runtime (ours: `nqueued`; the original lists them all in `queued`)."""
    n = rt.get("nqueued")
    return int(n) if isinstance(n, int) else len(rt.get("queued") or [])


def module_file(m: dict[str, Any]) -> str:
    return str(m.get("file") or m.get("filename") or "")


def error_text(err: dict[str, Any]) -> str:
    """The description of a report on proc/log (ours: `description`; the original's: `desc`)."""
    return str(err.get("description") or err.get("desc") or "refused")
