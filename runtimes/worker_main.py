"""Entry point of a worker process: attach the IPC endpoint, build the runtime, run its loop.

Forked workers call `child_main(config)` right after the fork; exec'd workers (another Python,
e.g. python3.10 for wasmer) run `python -m runtimes.worker_main '<config json>'` with PYTHONPATH
set to the project root. Exit codes: 0 clean stop, 1 the loop raised, EXIT_BOOT_ERROR (3) the
worker could not boot: its runtime class did not load, build or set up (the supervisor's state
machine then goes FATAL at once instead of restarting it).
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import traceback

import orjson

from common.exit_status import EXIT_BOOT_ERROR
from runtimes.base import WorkerConfig, WorkerLogHandler

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask the kernel to SIGKILL us when the supervisor dies (PR_SET_PDEATHSIG), then close the race
    where it died before the call. No-op where prctl does not exist (then the loop's ppid check stays)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(EXIT_BOOT_ERROR)


def set_title(name: str) -> None:
    try:
        import setproctitle

        setproctitle.setproctitle(f"silverline: rt.{name}")
    except ImportError:
        pass


_pinned: str | None = None  # how pin() pinned this worker: logged once the runtime's log exists


def pin(cpus: list[int] | None) -> None:
    """Restrict this worker to `cpus` (start.py -g): a cgroup v2 cpuset where the node can make
    one, else sched_setaffinity (runtimes/cgroups.py)."""
    global _pinned
    if cpus:
        from runtimes import cgroups

        _pinned = cgroups.pin_process(cpus)


def reset_signals() -> None:
    """Undo the supervisor's signal setup: stop is a message, Ctrl-C in a terminal is for the supervisor."""
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # the supervisor's "stop and end the modules" (also after exec)


def child_main(config: WorkerConfig) -> int:
    """Run the runtime named in `config` in this (worker) process; returns the exit code."""
    set_title(config.name)
    import faulthandler

    faulthandler.enable()  # SIGABRT from the supervisor's heartbeat check prints where the worker hangs
    import ipc
    import runtimes

    try:
        cls = runtimes.get(config.runtime).load()
        ep = ipc.WorkerEndpoint.attach(config.sid, config.slot, backend=config.backend, spin=config.spin)
    except Exception:
        sys.stderr.write(f"worker rt.{config.name}: cannot start:\n{traceback.format_exc()}")
        return EXIT_BOOT_ERROR
    try:
        try:
            rt = cls(ep, config)
        except Exception as e:
            sys.stderr.write(f"worker rt.{config.name}: cannot build the runtime: {type(e).__name__}: {e}\n"
                             f"{traceback.format_exc()}")
            return EXIT_BOOT_ERROR
        root = logging.getLogger()
        for h in list(root.handlers):
            root.removeHandler(h)
        root.addHandler(WorkerLogHandler(rt))
        root.setLevel(config.log_level)
        if _pinned:
            rt.log(logging.INFO, _pinned)
        try:
            rt.setup()
        except Exception as e:
            rt.log(logging.CRITICAL, f"runtime setup failed: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            return EXIT_BOOT_ERROR
        try:
            rt.run()
        except Exception:
            rt.log(logging.CRITICAL, f"runtime loop crashed:\n{traceback.format_exc()}")
            return 1
        return 0
    finally:
        try:
            ep.close()
        except Exception:
            pass


def main(argv: list[str]) -> int:
    """`python -m runtimes.worker_main CONFIG_JSON` (exec'd workers)."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m runtimes.worker_main CONFIG_JSON\n")
        return EXIT_BOOT_ERROR
    try:
        config = WorkerConfig.from_json(orjson.loads(argv[0]))
    except Exception as e:
        sys.stderr.write(f"worker: bad config JSON: {e}\n")
        return EXIT_BOOT_ERROR
    die_with_parent(int(os.environ["SL_SUPERVISOR_PID"]) if os.environ.get("SL_SUPERVISOR_PID") else None)
    reset_signals()
    pin(config.cpus)
    return child_main(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
