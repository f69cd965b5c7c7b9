"""How a module or a worker ended: the `status` object of an exited message, the worker's boot-error
exit code. Shared by the supervisor and the runtimes (neither imports the other for this)."""
from __future__ import annotations

from typing import Any

# A worker that cannot boot (import error, engine missing, the runtime's constructor or setup() raised)
# exits with this code; the supervisor then goes FATAL at once instead of restarting it.
EXIT_BOOT_ERROR = 3

REASONS = ("exited", "deleted", "crashed", "killed", "limit", "error")


def exit_status(reason: str = "exited", code: int | None = None, error: str | None = None) -> dict[str, Any]:
    """The `status` object of an exited message (ours: docs/protocol.md, "Delete and exited")."""
    return {"reason": reason, "code": code, "error": error}


def exit_status_of(status: Any) -> dict[str, Any]:
    """The `status` of an exited message as our object (docs/protocol.md, "Delete and exited").

    The original's runtimes send the string `"exited"` (docs/compatibility.md, "The original runtimes"); ours send
    `{"reason", "code", "error"}`. A string becomes the reason; anything else that is not an
    object becomes `{"reason": None, ...}` with the raw value kept under `raw`."""
    if isinstance(status, dict):
        return {"reason": status.get("reason"), "code": status.get("code"), "error": status.get("error"),
                **{k: v for k, v in status.items() if k not in ("reason", "code", "error")}}
    if isinstance(status, str):
        return {"reason": status, "code": None, "error": None}
    out: dict[str, Any] = {"reason": None, "code": None, "error": None}
    if status is not None:
        out["raw"] = status
    return out
