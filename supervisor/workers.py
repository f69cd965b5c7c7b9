"""One worker process per runtime: its state machine, its module slots, fork/exec and reaping.

The restart policy lives in the state machine (see `states.py`): a worker that dies before it has
been up `startsecs` counts as a failed start; after `start_retries` failed starts in a row it goes
FATAL instead of looping. A worker that dies after having run is restarted after the base backoff.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import orjson

from runtimes import RuntimeSpec
from common.exit_status import EXIT_BOOT_ERROR
from runtimes.base import Runtime, WorkerConfig
from supervisor.states import WorkerState, backoff_delay, check_edge
from common.topics import Grant

log = logging.getLogger("mgr")

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class ModuleRecord:
    """The supervisor's view of a module: enough to route, report and re-create it."""

    index: int
    uuid: str
    name: str
    data: dict[str, Any]
    grants: list[Grant]
    pending_create: bool = False  # create not delivered yet (worker was down): sent at next spawn
    deleting: bool = False


@dataclass
class Worker:
    slot: int
    spec: RuntimeSpec
    cls: type[Runtime]
    name: str  # full runtime name
    uuid: str
    cpus: list[int] | None
    settings: dict[str, Any]
    state: WorkerState = WorkerState.STOPPED
    pid: int | None = None
    ep: Any = None  # ipc.SupervisorEndpoint while the process exists
    started_at: float = 0.0
    failures: int = 0  # failed starts in a row
    restart_at: float = 0.0
    last_exit: int | None = None
    modules: dict[int, ModuleRecord] = field(default_factory=dict)
    by_uuid: dict[str, int] = field(default_factory=dict)
    ka_fields: dict[str, Any] = field(default_factory=dict)
    ka_interval: float = 10.0
    next_keepalive: float = 0.0
    booted: bool = False  # the worker's loop runs (its first keepalive arrived)
    last_heard: float = 0.0  # monotonic time of the last message from the worker
    abort_sent: float = 0.0  # heartbeat: when SIGABRT was sent (then SIGKILL after a grace)

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(f"if.{self.name}")

    @property
    def max_nmodules(self) -> int:
        return max(1, min(128, int(self.cls.MAX_NMODULES)))

    def change_state(self, new: WorkerState, why: str = "") -> None:
        check_edge(self.state, new)
        self.logger.debug("%s -> %s%s", self.state.value, new.value, f" ({why})" if why else "")
        self.state = new

    # ------------------------------------------------------------------ modules

    def free_index(self) -> int | None:
        for i in range(self.max_nmodules):
            if i not in self.modules:
                return i
        return None

    def add_module(self, rec: ModuleRecord) -> None:
        self.modules[rec.index] = rec
        self.by_uuid[rec.uuid] = rec.index

    def pop_module(self, index: int) -> ModuleRecord | None:
        rec = self.modules.pop(index, None)
        if rec is not None:
            self.by_uuid.pop(rec.uuid, None)
        return rec

    # ------------------------------------------------------------------ process

    def spawn(self, node: Any, config_base: dict[str, Any], close_fds: list[int]) -> None:
        """Create the slot's IPC objects and fork (then maybe exec) the worker. Single-threaded caller."""
        # STOPPED|BACKOFF -> STARTING
        self.change_state(WorkerState.STARTING, "spawn")
        self.ep = node.add_worker(self.slot)
        cfg = WorkerConfig(**{**config_base, **node.attach_args(self.slot), "runtime": self.spec.name,
                              "name": self.name, "uuid": self.uuid, "cpus": self.cpus, "settings": self.settings})
        argv = self.cls.exec_command(self.settings)
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never return into the supervisor's code
            code = EXIT_BOOT_ERROR
            try:
                from runtimes import worker_main

                worker_main.die_with_parent(parent)
                worker_main.reset_signals()
                for fd in close_fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                worker_main.pin(self.cpus)
                if argv:
                    env = dict(os.environ)
                    env["PYTHONPATH"] = PROJECT_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
                    env["SL_SUPERVISOR_PID"] = str(parent)
                    os.execve(argv[0], [*argv, orjson.dumps(cfg.to_json()).decode()], env)
                code = worker_main.child_main(cfg)
            except BaseException:
                try:
                    sys.stderr.write(f"worker rt.{self.name} failed to start:\n{traceback.format_exc()}")
                    sys.stderr.flush()
                except Exception:
                    pass
            finally:
                os._exit(code)
        self.pid = pid
        self.booted = False
        self.started_at = self.last_heard = time.monotonic()
        self.abort_sent = 0.0
        self.logger.info("worker started (pid %d%s)", pid, f", exec {argv[0]}" if argv else "")

    def died(self, code: int, stopping: bool, start_retries: int, backoff: float) -> WorkerState:
        """Apply the restart policy after the process ended with exit `code`; returns the new state."""
        self.pid = None
        self.last_exit = code
        now = time.monotonic()
        if self.state is WorkerState.STOPPING or stopping:
            if self.state is not WorkerState.STOPPING:
                self.change_state(WorkerState.STOPPING, "stop during start")
            self.change_state(WorkerState.STOPPED, f"exit {code}")  # STOPPING -> STOPPED
            return self.state
        if self.state is WorkerState.STARTING:
            # STARTING = its loop has not run for startsecs yet (a boot error always lands here:
            # RUNNING needs the first keepalive, which setup() failures never send)
            self.failures += 1
            what = "failed to boot" if code == EXIT_BOOT_ERROR else f"died right after start (exit {code})"
            if self.failures >= start_retries:
                self.change_state(WorkerState.FATAL, what)  # STARTING -> FATAL
                self.logger.critical("worker %s %d times in a row: FATAL, not restarting", what, self.failures)
                return self.state
            delay = backoff_delay(self.failures, backoff)
            self.change_state(WorkerState.BACKOFF, what)  # STARTING -> BACKOFF
            self.logger.error("worker %s; restart %d/%d in %.1fs", what, self.failures, start_retries - 1, delay)
        else:
            self.failures = 0
            delay = backoff
            self.change_state(WorkerState.BACKOFF, f"exit {code}")  # RUNNING -> BACKOFF
            self.logger.error("worker died (exit %s); restarting in %.1fs", code, delay)
        self.restart_at = now + delay
        return self.state
