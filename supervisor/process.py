"""The supervisor's process syscalls behind one small object (supervisord's injectable `options`).

`Worker` (workers.py) never calls fork/exec, kill or waitpid itself: it asks a `ProcessOps`.
`OsProcessOps` is the real one. Unit tests hand the state machine a fake that records the calls and
returns made-up pids (tests/supervisor/test_workers.py), so every edge of the restart policy is
checked without forking; the real-process tests (tests/supervisor/test_node.py) run this file.
"""
from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass
from typing import Protocol

import orjson

from common.exit_status import EXIT_BOOT_ERROR
from runtimes.base import WorkerConfig

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Launch:
    """What one worker process is started with."""

    name: str  # full runtime name, for the boot error text
    config: WorkerConfig
    argv: list[str] | None  # a command to exec after the fork; None runs runtimes.worker_main in the child
    cpus: list[int] | None  # sched_setaffinity in the child
    close_fds: list[int]  # the supervisor's own descriptors the child must not keep


class ProcessOps(Protocol):
    def spawn(self, launch: Launch) -> int:
        """Start the worker process; returns its pid. Called from the supervisor's single thread."""
        ...

    def kill(self, pid: int, sig: int) -> None:
        """Send `sig`; a process that has already ended is not an error."""
        ...

    def wait_any(self, block: bool) -> tuple[int, int] | None:
        """(pid, exit code as `os.waitstatus_to_exitcode` gives it) of one ended child, or None."""
        ...

    def allowed_cpus(self) -> list[int]:
        """The CPUs this process may run on (what an unpinned worker inherits)."""
        ...


class OsProcessOps:
    """The real syscalls."""

    def spawn(self, launch: Launch) -> int:
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never return into the supervisor's code
            self._child(launch, parent)
        return pid

    @staticmethod
    def _child(launch: Launch, parent: int) -> None:
        code = EXIT_BOOT_ERROR
        try:
            from runtimes import worker_main

            worker_main.die_with_parent(parent)
            worker_main.reset_signals()
            for fd in launch.close_fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            worker_main.pin(launch.cpus)
            if launch.argv:
                env = dict(os.environ)
                env["PYTHONPATH"] = PROJECT_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
                env["SL_SUPERVISOR_PID"] = str(parent)
                os.execve(launch.argv[0], [*launch.argv, orjson.dumps(launch.config.to_json()).decode()], env)
            code = worker_main.child_main(launch.config)
        except BaseException:
            try:
                sys.stderr.write(f"worker rt.{launch.name} failed to start:\n{traceback.format_exc()}")
                sys.stderr.flush()
            except Exception:
                pass
        finally:
            os._exit(code)

    def kill(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def wait_any(self, block: bool) -> tuple[int, int] | None:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            return None
        return pid, os.waitstatus_to_exitcode(status)

    def allowed_cpus(self) -> list[int]:
        return sorted(os.sched_getaffinity(0))
