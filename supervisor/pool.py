"""The node's workers as a group: made from the settings, started with their IPC objects, reaped,
and what a death means for their modules and channels. The edges themselves are in workers.py."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import ipc
import runtimes
from ipc import messages
from runtimes.base import WorkerConfig
from supervisor.identity import Identity
from supervisor.modules import ModuleControl
from supervisor.outbox import Outbox
from supervisor.process import Launch, ProcessOps
from supervisor.registration import NodeRegistration
from supervisor.router import Router
from supervisor.settings import Settings
from supervisor.states import WorkerState
from supervisor.workers import RestartPolicy, Tick, Worker

log = logging.getLogger("mgr")


def make_workers(settings: Settings, ident: Identity, ops: ProcessOps) -> list[Worker]:
    """One Worker per `-r` runtime (UnknownRuntime / RuntimeUnavailable when one cannot be had)."""
    policy = RestartPolicy(startsecs=settings.startsecs, start_retries=settings.start_retries, backoff=settings.backoff,
                           stop_timeout=settings.stop_timeout, worker_timeout=settings.worker_timeout)
    workers = []
    for slot, choice in enumerate(settings.runtimes):
        spec = runtimes.get(choice.registry_name)
        w = Worker(slot, spec, spec.load(), choice.full_name, ident.runtimes[choice.full_name], choice.cpus,
                   settings.runtime_settings.get(spec.name, {}), ops, policy)
        w.ka_interval = settings.ka_interval
        workers.append(w)
    return workers


@dataclass
class WorkerPool:
    settings: Settings
    workers: list[Worker]
    ops: ProcessOps
    outbox: Outbox
    router: Router
    modules: ModuleControl
    registration: NodeRegistration
    child_fds: Callable[[], list[int]]  # the supervisor's descriptors a child closes
    on_change: Callable[[], None]  # the node's status changed (sd_notify STATUS)
    node_ipc: ipc.NodeIPC | None = None  # set by run() before the first start

    @property
    def all_stopped(self) -> bool:
        return all(w.pid is None for w in self.workers)

    def status_text(self) -> str:
        counts: dict[str, int] = {}
        for w in self.workers:
            counts[w.state.value] = counts.get(w.state.value, 0) + 1
        mods = sum(len(w.modules) for w in self.workers)
        full = [f"{w.name} ({len(w.backlog)} waiting)" for w in self.workers if w.backlog]
        return (f"{len(self.workers)} runtimes ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}), {mods} modules"
                + (f"; input ring full: {', '.join(full)}" if full else ""))

    def log_cpus(self) -> None:
        if not any(w.cpus for w in self.workers):
            return
        log.info("CPU pinning: a cgroup v2 cpuset where the worker's cgroup allows one, else sched_setaffinity "
                 "(runtimes/cgroups.py); each worker logs which")

    # ------------------------------------------------------------------ start

    def start(self, w: Worker) -> None:
        """Create the worker's IPC objects and start its process; a failure makes it FATAL."""
        assert self.node_ipc is not None
        ka = max(0.5, min(5.0, w.ka_interval / 2 if w.ka_interval > 0 else 5.0))
        if self.settings.worker_timeout:
            ka = max(0.1, min(ka, self.settings.worker_timeout / 3))  # heartbeats well inside the timeout
        try:
            w.ep = self.node_ipc.add_worker(w.slot)
            cfg = WorkerConfig(realm=self.settings.config.realm, log_level=self.settings.log_level, keepalive_interval=ka,
                               **self.node_ipc.attach_args(w.slot), runtime=w.spec.name, name=w.name, uuid=w.uuid,
                               cpus=w.cpus, settings=w.settings)
            w.start(Launch(w.name, cfg, w.cls.exec_command(w.settings), w.cpus, self.child_fds()), time.monotonic())
        except Exception as e:
            log.exception("cannot start worker %s: %s", w.name, e)
            if w.ep is not None:
                self.node_ipc.remove_worker(w.slot)
                w.ep = None
            w.start_failed("spawn failed")
            self._fatal(w)
            return
        self.modules.send_pending(w)
        self.on_change()

    # ------------------------------------------------------------------ timers, stop

    def tick(self, now: float, stopping: bool) -> None:
        for w in self.workers:
            what = w.tick(now)
            if what is Tick.RUNNING:
                self.on_change()
            elif what is Tick.RESTART and not stopping:
                self.start(w)

    def next_deadline(self) -> float | None:
        return min((d for d in (w.next_deadline() for w in self.workers) if d is not None), default=None)

    def request_stop(self, why: str) -> None:
        now = time.monotonic()
        for w in self.workers:
            if w.request_stop(now, why):
                self.router.send(w, messages.ctrl(0), messages.MGR_STOP)

    def kill_all(self) -> None:
        """The last exit path: SIGKILL what is left and reap it."""
        for w in self.workers:
            w.kill("worker did not stop in time: SIGKILL")
        while not self.all_stopped:  # SIGKILLed: they do end
            if not self.reap(block=True):
                break

    # ------------------------------------------------------------------ deaths

    def reap(self, block: bool = False) -> bool:
        """Reap every ended child (one SIGCHLD may stand for several); True if one was reaped."""
        got = False
        while (ended := self.ops.wait_any(block)) is not None:
            got = True
            block = False
            pid, code = ended
            w = next((x for x in self.workers if x.pid == pid), None)
            if w is not None:
                self._died(w, code)
        return got

    def _died(self, w: Worker, code: int) -> None:
        if w.ep is not None:  # what it said before dying (exited messages, logs) still counts
            self.router.drain(w)
            assert self.node_ipc is not None
            self.node_ipc.remove_worker(w.slot)
            w.ep = None
        self.router.close_worker(w.slot)
        was_stopping = w.stopping
        new = w.died(code, time.monotonic())
        if was_stopping:
            w.logger.info("worker exited (%s)", code)
            self.modules.worker_stopped(w)
            return
        self.modules.worker_died(w, code)
        if new is WorkerState.FATAL:
            self._fatal(w)
        self.on_change()

    def _fatal(self, w: Worker) -> None:
        self.modules.runtime_fatal(w)
        self.registration.runtime_deleted(w)
        self.outbox.error(f"runtime {w.name} ({w.spec.name}) failed to start {w.failures} times in a row and is FATAL; deleted at the orchestrator")

