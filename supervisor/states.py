"""Worker process states and the allowed edges (the supervisor `states.py` habit).

    STOPPED -> STARTING            spawn
    STARTING -> RUNNING            alive for `startsecs` and its loop runs (first keepalive)
    STARTING -> BACKOFF            died early (boot error or crash); retries left
    STARTING -> FATAL              died early and no retries left
    RUNNING -> BACKOFF             died after having run (retry counter reset)
    BACKOFF -> STARTING            backoff delay elapsed
    STARTING|RUNNING -> STOPPING   graceful stop requested
    STOPPING -> STOPPED            reaped
    BACKOFF|FATAL -> STOPPED       stop requested while not running
"""
from __future__ import annotations

import enum


class WorkerState(enum.Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    FATAL = "FATAL"


EDGES: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.STOPPED: frozenset({WorkerState.STARTING}),
    WorkerState.STARTING: frozenset({WorkerState.RUNNING, WorkerState.BACKOFF, WorkerState.FATAL, WorkerState.STOPPING}),
    WorkerState.RUNNING: frozenset({WorkerState.BACKOFF, WorkerState.STOPPING}),
    WorkerState.BACKOFF: frozenset({WorkerState.STARTING, WorkerState.STOPPED}),
    WorkerState.STOPPING: frozenset({WorkerState.STOPPED}),
    WorkerState.FATAL: frozenset({WorkerState.STOPPED}),
}


class StateError(RuntimeError):
    """A state change that the machine does not allow (a supervisor bug)."""


def check_edge(old: WorkerState, new: WorkerState) -> None:
    if new not in EDGES[old]:
        raise StateError(f"worker state {old.value} -> {new.value} is not allowed")


def backoff_delay(attempt: int, base: float, cap: float = 30.0) -> float:
    """Delay before start attempt `attempt` (1, 2, ...): base, 2*base, 4*base, ... capped."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))
