"""One worker process per runtime and its state machine: every edge of the restart policy is here.

The supervisor's loop drives a `Worker` with a few calls and never changes its state itself:
`start(launch, now)` (STOPPED|BACKOFF -> STARTING), `tick(now)` (STARTING -> RUNNING after
`startsecs`, "restart due" in BACKOFF, the heartbeat's SIGABRT -> SIGKILL, SIGKILL at the stop
deadline), `died(code, now)` (the restart policy) and `request_stop(now)`. A worker that dies before
it has been up `startsecs` counts as a failed start; delays double per failed start and after
`start_retries` of them in a row it goes FATAL instead of looping. A boot error (the worker exits
EXIT_BOOT_ERROR while STARTING: it could not build or set up its runtime) goes FATAL at once, since a
restart would fail the same way. A worker that dies after having run is restarted after the base
delay. Every syscall goes through `ProcessOps`.
"""
from __future__ import annotations

import enum
import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from common.exit_status import EXIT_BOOT_ERROR
from ipc import SupervisorEndpoint
from runtimes import RuntimeSpec
from runtimes.base import Runtime
from supervisor.backlog import Backlog
from supervisor.process import Launch, ProcessOps
from supervisor.slots import ModuleSlots
from supervisor.states import WorkerState, backoff_delay, check_edge


@dataclass(frozen=True)
class RestartPolicy:
    startsecs: float = 1.0  # alive this long (and its loop runs) = started
    start_retries: int = 3  # failed starts in a row before FATAL
    backoff: float = 1.0  # first restart delay; doubles per failed start, capped at 30 s
    stop_timeout: float = 5.0  # graceful stop: SIGKILL after this long
    worker_timeout: float = 0.0  # a RUNNING worker silent this long gets SIGABRT; 0 = off
    abort_grace: float = 2.0  # SIGABRT -> SIGKILL when the worker ignores it


class Tick(enum.Enum):
    """What `Worker.tick` asks of the caller."""

    NOTHING = "nothing"
    RUNNING = "running"  # it has just become RUNNING (the node's status changed)
    RESTART = "restart"  # BACKOFF is over: start it again (the caller prepares its IPC)


@dataclass
class Worker:
    slot: int
    spec: RuntimeSpec
    cls: type[Runtime]
    name: str  # full runtime name
    uuid: str
    cpus: list[int] | None
    settings: dict[str, Any]
    ops: ProcessOps
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    state: WorkerState = WorkerState.STOPPED
    pid: int | None = None
    ep: SupervisorEndpoint | None = None  # its IPC while the process exists
    started_at: float = 0.0
    failures: int = 0  # failed starts in a row
    restart_at: float = 0.0
    last_exit: int | None = None
    booted: bool = False  # the worker's loop runs (its first keepalive arrived)
    last_heard: float = 0.0  # monotonic time of the last message from the worker
    abort_sent: float | None = None  # heartbeat: when SIGABRT was sent (SIGKILL follows after a grace)
    kill_sent: bool = False  # SIGKILL sent to this process (heartbeat, stop deadline or corrupt ring)
    stop_deadline: float | None = None  # set by request_stop
    modules: ModuleSlots = field(init=False)
    ka_fields: dict[str, Any] = field(default_factory=dict)  # what its last keepalive said
    ka_interval: float = 10.0
    next_keepalive: float = 0.0
    backlog: Backlog = field(default_factory=Backlog)  # messages waiting for room in its input ring (router.py)
    reported: dict[str, Any] | None = None  # its registration extras (RT_REGISTER), once a worker sent them
    starts: int = 0  # counters for the node's metrics endpoint (supervisor/metrics.py)
    to_worker: int = 0
    to_worker_bytes: int = 0
    from_worker: int = 0
    from_worker_bytes: int = 0

    def __post_init__(self) -> None:
        self.modules = ModuleSlots(self.max_nmodules)

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(f"if.{self.name}")

    @property
    def max_nmodules(self) -> int:
        return max(1, min(128, int(self.cls.MAX_NMODULES)))

    @property
    def stopping(self) -> bool:
        return self.stop_deadline is not None

    def change_state(self, new: WorkerState, why: str = "") -> None:
        check_edge(self.state, new)
        self.logger.debug("%s -> %s%s", self.state.value, new.value, f" ({why})" if why else "")
        self.state = new

    # ------------------------------------------------------------------ the calls the loop makes

    def start(self, launch: Launch, now: float) -> None:
        """Start the process (its IPC objects exist already). Raises what the spawn raised."""
        self.change_state(WorkerState.STARTING, "spawn")  # STOPPED|BACKOFF -> STARTING
        pid = self.ops.spawn(launch)
        self.pid = pid
        self.starts += 1
        self.booted = False
        self.started_at = self.last_heard = now
        self.abort_sent = None
        self.kill_sent = False
        self.logger.info("worker started (pid %d%s)", pid, f", exec {launch.argv[0]}" if launch.argv else "")

    def start_failed(self, why: str) -> None:
        """Its IPC objects or the fork failed: nothing to retry."""
        if self.state is not WorkerState.STARTING:
            self.change_state(WorkerState.STARTING, why)  # STOPPED|BACKOFF -> STARTING
        self.change_state(WorkerState.FATAL, why)  # STARTING -> FATAL

    def tick(self, now: float) -> Tick:
        if self.state is WorkerState.STARTING and self.pid is not None and self.booted and now - self.started_at >= self.policy.startsecs:
            self.change_state(WorkerState.RUNNING, f"up for {self.policy.startsecs}s")  # STARTING -> RUNNING
            self.failures = 0
            return Tick.RUNNING
        if self.state is WorkerState.BACKOFF and now >= self.restart_at and not self.stopping:
            return Tick.RESTART  # BACKOFF -> STARTING happens in start()
        if self.state is WorkerState.STOPPING and self.stop_deadline is not None and now >= self.stop_deadline:
            self.kill("worker did not stop in time: SIGKILL")
        elif self.state is WorkerState.RUNNING and self.policy.worker_timeout:
            self._check_heartbeat(now)
        return Tick.NOTHING

    def _check_heartbeat(self, now: float) -> None:
        """gunicorn's two-step kill of a hung worker: SIGABRT (faulthandler prints where it hangs),
        then SIGKILL after a grace; the death then goes through the normal restart policy."""
        if self.pid is None or self.kill_sent:
            return
        if self.abort_sent is not None:
            if now - self.abort_sent >= self.policy.abort_grace:
                self.kill("worker ignored SIGABRT: SIGKILL", level=logging.ERROR)
        elif now - self.last_heard >= self.policy.worker_timeout:
            self.logger.error("worker silent for %.1fs (--worker-timeout): SIGABRT", now - self.last_heard)
            self.ops.kill(self.pid, signal.SIGABRT)
            self.abort_sent = now

    def kill(self, why: str = "", level: int = logging.WARNING) -> None:
        """SIGKILL the process once (it is reaped, then `died` applies the policy); logs `why`."""
        if self.pid is not None and not self.kill_sent:
            self.kill_sent = True
            if why:
                self.logger.log(level, "%s", why)
            self.ops.kill(self.pid, signal.SIGKILL)

    def request_stop(self, now: float, why: str) -> bool:
        """Graceful stop; True when the process should be told to stop (MGR_STOP)."""
        self.stop_deadline = now + self.policy.stop_timeout
        if self.state in (WorkerState.STARTING, WorkerState.RUNNING):
            self.change_state(WorkerState.STOPPING, why)  # STARTING|RUNNING -> STOPPING
            return True
        if self.state in (WorkerState.BACKOFF, WorkerState.FATAL):
            self.change_state(WorkerState.STOPPED, why)  # BACKOFF|FATAL -> STOPPED
        return False

    def died(self, code: int, now: float) -> WorkerState:
        """The process ended with exit `code` (reaped): apply the restart policy; returns the new state."""
        self.pid = None
        self.last_exit = code
        if self.state is WorkerState.STOPPING:
            self.change_state(WorkerState.STOPPED, f"exit {code}")  # STOPPING -> STOPPED
            return self.state
        if self.state is WorkerState.STARTING and code == EXIT_BOOT_ERROR:
            # STARTING -> FATAL at once (gunicorn's WORKER_BOOT_ERROR): the worker said it cannot boot
            # (runtime class missing or failing to construct, setup() raised: engine missing, bad
            # setting). A restart would fail the same way, so no retries and no backoff loop.
            self.failures += 1
            self.change_state(WorkerState.FATAL, f"boot error (exit {code})")
            self.logger.critical("worker failed to boot (exit %d): FATAL at once, not restarting; its error is in the "
                                 "log above: fix the cause (engine, settings) and restart the node", code)
            return self.state
        if self.state is WorkerState.STARTING:
            self.failures += 1
            what = f"died right after start (exit {code})"
            if self.failures >= self.policy.start_retries:
                self.change_state(WorkerState.FATAL, what)  # STARTING -> FATAL
                self.logger.critical("worker %s %d times in a row: FATAL, not restarting", what, self.failures)
                return self.state
            delay = backoff_delay(self.failures, self.policy.backoff)
            self.change_state(WorkerState.BACKOFF, what)  # STARTING -> BACKOFF
            self.logger.error("worker %s; restart %d/%d in %.1fs", what, self.failures, self.policy.start_retries - 1, delay)
        else:
            self.failures = 0
            delay = self.policy.backoff
            self.change_state(WorkerState.BACKOFF, f"exit {code}")  # RUNNING -> BACKOFF
            self.logger.error("worker died (exit %s); restarting in %.1fs", code, delay)
        self.restart_at = now + delay
        return self.state

    def next_deadline(self) -> float | None:
        """When `tick` has something to do for this worker next (None: nothing timed)."""
        if self.state is WorkerState.BACKOFF:
            return None if self.stopping else self.restart_at
        if self.state is WorkerState.STARTING:  # not booted yet: its first keepalive is an event, the loop ticks after it
            return self.started_at + self.policy.startsecs if self.booted else None
        if self.state is WorkerState.STOPPING:
            return None if self.kill_sent else self.stop_deadline  # killed: its SIGCHLD is next
        if self.state is WorkerState.RUNNING and self.policy.worker_timeout and self.pid is not None and not self.kill_sent:
            if self.abort_sent is not None:
                return self.abort_sent + self.policy.abort_grace
            return self.last_heard + self.policy.worker_timeout
        return None
