"""How a module or a worker ended: the `status` object of an exited message, the worker's boot-error
exit code. Shared by the supervisor and the runtimes (neither imports the other for this)."""
from __future__ import annotations

from typing import Any

# A worker that cannot start (import error, engine missing, setup() raised) exits with this code;
# the supervisor counts it as a failed start and goes FATAL after its retries instead of looping.
EXIT_BOOT_ERROR = 3

REASONS = ("exited", "deleted", "crashed", "killed", "limit", "error")


def exit_status(reason: str = "exited", code: int | None = None, error: str | None = None) -> dict[str, Any]:
    """The `status` object of an exited message (PROTOCOL.md section 1, ours)."""
    return {"reason": reason, "code": code, "error": error}
