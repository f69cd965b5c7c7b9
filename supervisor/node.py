"""The node manager: start, stop, signals and the one selector loop (gunicorn's arbiter shape).

The loop waits on the MQTT socket, the workers' shared up-queue, a signal wakeup pipe (and a
terminal's stdin), then per wake-up: handle signals and stdin, read MQTT, drain the workers' rings
(unless the MQTT socket is behind), drain the doorbells; it looks at the timers (reconnect,
registration, keepalives, worker restarts and heartbeats, watchdog) when the earliest deadline is
due and TIMER_GRAIN after an event, and flushes MQTT right before it sleeps. Signal handlers do nothing but let CPython's C handler write the signal number into the
wakeup pipe. The supervisor itself starts no thread and forks its workers from this one thread,
before any socket exists. One exception: the sysv backend (the fallback where POSIX queues do not
exist) runs a helper thread, started by the first `fileno()` after those forks, so a worker restarted
later is forked while that thread lives.

The rest: router.py, modules.py, registration.py, pool.py, workers.py, status.py (docs/supervisor.md).
"""
from __future__ import annotations

import logging
import os
import selectors
import signal
import sys
import time

import ipc
from common.wire import Topics
from supervisor.delivery import Delivery
from supervisor.identity import EXIT_DUPLICATE, IdentityInUse, StateLock, load_identity, open_spool
from supervisor.modules import ModuleControl
from supervisor.mqtt_link import MqttLink
from supervisor.notify import Notifier
from supervisor.outbox import Outbox
from supervisor.pool import WorkerPool, make_workers
from supervisor.process import OsProcessOps, ProcessOps
from supervisor.registration import NodeRegistration
from supervisor.router import Router
from supervisor.settings import Settings
from supervisor.signals import SignalPipe
from supervisor.spool import Spool
from supervisor.status import NodeStatus

log = logging.getLogger("mgr")

TIMER_GRAIN = 0.02  # seconds between looks at the timers while messages flow (and after an event)


class Supervisor:
    def __init__(self, settings: Settings, ops: ProcessOps | None = None) -> None:
        self.settings = settings
        self.stopping = False
        self.exit_code = 0
        self.selector = selectors.DefaultSelector()
        ident = load_identity(settings.name, [r.full_name for r in settings.runtimes],
                              state_dir=settings.state_dir, manager_uuid=settings.manager_uuid)
        self.uuid = ident.manager
        ops = ops or OsProcessOps()
        self.workers = make_workers(settings, ident, ops)
        self.topics = Topics(settings.config.realm)
        self.outbox = Outbox(self.topics, node_name=settings.name, manager_uuid=self.uuid)
        self.registration = NodeRegistration(self.outbox, self.workers, ops, platform_extra=dict(settings.config.platform or {}),
                                             timeout=settings.reg_timeout, on_registered=lambda: self.status.registered(),
                                             on_refused=self._refused)
        self.delivery = Delivery(Spool.of(settings.state_dir, settings.name, settings.spool_max), self.outbox,
                                 settings.config.realm, [w.uuid for w in self.workers])
        # the router reports exited modules to module control, which sends through the router: the one late binding
        self.router = Router(self.workers, self.outbox, realm=settings.config.realm, access_control=settings.access_control,
                             heartbeat=bool(settings.worker_timeout), on_exited=lambda w, i, p: self.modules.exited(w, i, p),
                             on_register=self.registration.report, stdio_per_node=bool(settings.config.mqtt_username),
                             on_profile=self.delivery.offer)
        self.modules = ModuleControl(self.outbox, self.router)
        self.lock = StateLock(settings.state_dir, settings.name) if settings.state_dir else None
        self.refused = False
        self.pool = WorkerPool(settings, self.workers, ops, outbox=self.outbox, router=self.router, modules=self.modules,
                               registration=self.registration, child_fds=self._child_fds, on_change=lambda: self.status.update())
        self.status = NodeStatus(Notifier(), self.pool, self.registration, spool=self.delivery.status_text)
        self.control_topics = {self.topics.control(w.uuid): w for w in self.workers}
        self.node_ipc: ipc.NodeIPC | None = None
        self.link: MqttLink | None = None
        self.signals = SignalPipe((signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP, signal.SIGUSR1))
        self._stop_deadline = 0.0

    # ------------------------------------------------------------------ start / stop

    def run(self) -> int:
        """Fork the workers, connect, serve until stopped; returns the exit code."""
        if self.lock is not None:
            try:
                self.lock.acquire()
            except IdentityInUse as e:
                log.critical("%s", e)
                return EXIT_DUPLICATE
        try:
            open_spool(self.delivery)  # under the lock: one supervisor per spool; StateError when it cannot
            return self._run()
        finally:
            self.delivery.close()
            if self.lock is not None:
                self.lock.release()

    def _run(self) -> int:
        removed = ipc.cleanup_stale(self.settings.backend)
        if removed:
            log.info("removed %d stale IPC objects of dead supervisors", len(removed))
        self.node_ipc = ipc.NodeIPC(backend=self.settings.backend, ring_capacity=self.settings.ring_capacity, spin=self.settings.spin)
        self.pool.node_ipc = self.node_ipc
        try:
            self.selector.register(self.signals.open(), selectors.EVENT_READ, "signal")
            if self.settings.stdin_commands and sys.stdin is not None and sys.stdin.isatty():
                self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
                log.info("type q or quit (then Enter) to stop")
            self.pool.log_cpus()
            # Fork every worker before anything else exists (no socket yet; and with the sysv backend
            # `fileno()` starts a helper thread, so it is asked for only after these forks).
            for w in self.workers:
                self.pool.start(w)
            # READY=1 once the workers run, broker or no broker (a unit must not time out at boot while the
            # broker is down); STATUS then says what the node waits for; the watchdog is fed from now on
            self.status.ready(f"workers started; connecting to MQTT broker {self.settings.config.mqtt}:{self.settings.config.mqtt_port}")
            self.selector.register(self.node_ipc.fileno(), selectors.EVENT_READ, "ipc")
            self.link = MqttLink(self.settings.config, client_id=f"sl-{self.settings.name}-{self.uuid[:8]}-{os.getpid()}",
                                 selector=self.selector, on_message=self._on_mqtt, on_connect=self._on_connect,
                                 will=self.registration.will())
            self.outbox.link = self.status.link = self.link
            for topic in sorted(self.registration.topics_in):  # a retained create or reply is never taken (issue #25)
                self.link.subscribe(topic, 1, retained=topic == self.registration.presence)
            for topic in [*self.control_topics, *sorted(self.delivery.topics)]:
                self.link.subscribe(topic, 1, retained=False)
            log.info("node %s (manager %s), runtimes: %s", self.settings.name, self.uuid,
                     ", ".join(f"{w.name}={w.spec.name} ({w.uuid})" for w in self.workers))
            self.link.connect()
            self._loop()
        except Exception:
            log.critical("supervisor failed; stopping the node", exc_info=True)
            self.exit_code = 1
        finally:
            self._shutdown()
        return self.exit_code

    def request_stop(self, why: str, *, end_modules: bool = False) -> None:
        """Stop the node. Default: a stop for a restart (SIGTERM, as systemd does): the modules stay
        resurrectable. `end_modules` (SIGUSR1): they are reported exited and end for good."""
        if self.stopping:
            return
        if self.refused:
            log.info("stopping (%s)", why)
        elif end_modules:
            log.info("stopping (%s): ending the modules (reported exited, not resurrected)", why)
        else:
            log.info("stopping (%s) for a restart: modules stay resurrectable (the orchestrator re-creates them "
                     "when this node is back); SIGUSR1 stops and ends them", why)
        self.modules.stop_mode = "end" if end_modules else "restart"
        self.stopping = True
        self.status.stop()
        self._stop_deadline = time.monotonic() + self.settings.stop_timeout
        self.pool.request_stop(why)

    def _shutdown(self) -> None:
        """Every exit path: kill what is left, reap, delete registrations, unlink IPC, disconnect."""
        try:
            self.pool.kill_all()
            self.delivery.flush(time.monotonic())
            if self.link is not None and self.link.connected and not self.refused:
                self.registration.goodbye()  # a refused duplicate deletes nothing: the identity is another's
                self.link.flush()
        finally:
            if os.environ.get("SILVERLINE_DUMP_MODULES"):  # debug: what this process imported (tests/supervisor/test_no_engines.py)
                with open(os.environ["SILVERLINE_DUMP_MODULES"], "w", encoding="utf-8") as f:
                    f.write("\n".join(sorted(sys.modules)) + "\n")
            if self.link is not None:
                self.link.close()
            if self.node_ipc is not None:
                self.node_ipc.close()
            self.signals.close()
            self.status.close()
            self.selector.close()
            log.info("stopped")

    # ------------------------------------------------------------------ signals

    def _handle_signals(self) -> None:
        for signum in self.signals.take():
            if signum == signal.SIGCHLD:
                self.pool.reap()
            elif signum in (signal.SIGTERM, signal.SIGINT):
                self.request_stop(signal.Signals(signum).name)
            elif signum == signal.SIGUSR1:
                self.request_stop("SIGUSR1", end_modules=True)
            elif signum == signal.SIGHUP:
                log.info("SIGHUP: nothing to reload (restart the node to change its configuration)")

    def _handle_stdin(self) -> None:
        line = sys.stdin.readline()
        if not line:
            self.selector.unregister(sys.stdin.fileno())
            return
        if line.strip().lower() in ("q", "quit", "exit"):
            self.request_stop("quit on stdin")

    def _child_fds(self) -> list[int]:
        """The supervisor's own descriptors, closed in a forked worker."""
        fds = [*self.signals.fds(), self.lock.fileno() if self.lock is not None else -1]
        try:
            fds.append(self.selector.fileno())
        except (AttributeError, ValueError):
            pass
        sock = self.link.fileno() if self.link is not None else None
        if sock is not None:
            fds.append(sock)
        return [fd for fd in fds if fd >= 0]

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        # Timers (registration, keepalives, restarts, heartbeats, watchdog, reconnect) are looked at
        # when the earliest deadline is due, and after a wake-up by an event at most TIMER_GRAIN
        # later (what the event started has its deadline by then); on the message path the loop does
        # only select, drain and flush. An idle node sleeps until its next deadline (1 s at most).
        # The flush comes right before the select: what the timers (or anything else) queued for the
        # broker goes out before the loop sleeps, or the socket waits for EVENT_WRITE.
        assert self.node_ipc is not None and self.link is not None
        node_ipc, link, router = self.node_ipc, self.link, self.router
        timer_due = 0.0
        drain_ipc = False
        while True:
            now = time.monotonic()
            if now >= timer_due:
                if self.stopping and (self.pool.all_stopped or now >= self._stop_deadline):
                    return  # _shutdown kills the stragglers
                self._timers(now)
                timeout = self._timeout(time.monotonic())
                timer_due = now + min(timeout, TIMER_GRAIN)
            else:
                timeout = timer_due - now
            self.delivery.flush(now)  # results made durable, then published
            link.flush()
            pending = node_ipc.before_sleep() and not link.backlog()  # backpressure: wait for the socket
            if router.waiting:  # a worker's ring is full: try it again soon (backlog.py)
                timeout = min(timeout, router.retry_in(now))
            events = self.selector.select(0 if pending else timeout)
            node_ipc.after_wake()
            for key, mask in events:
                what = key.data
                if what == "ipc":
                    drain_ipc = True
                elif what == "signal":
                    self._handle_signals()
                    timer_due = 0.0
                elif what == "stdin":
                    self._handle_stdin()
                elif what is link:
                    link.handle(mask)
            if not link.backlog():
                router.drain_all()
            if router.waiting:
                router.retry(time.monotonic())
            if drain_ipc or node_ipc.bells_due:  # after the rings: the message that rang is handled first
                node_ipc.drain_doorbells()
                drain_ipc = False

    def _timeout(self, now: float) -> float:
        """Seconds to the earliest deadline (1 s at most: paho's keepalive, STATUS). A deadline the
        timers left in the past (nothing they can do yet) is looked at again after TIMER_GRAIN, not
        in a busy loop."""
        deadlines = [now + 1.0, self.registration.next_deadline(), self.link.next_deadline() if self.link else None,
                     self.pool.next_deadline(), self.status.next_deadline(), self.delivery.next_deadline(), self._stop_deadline if self.stopping else None]
        left = min(d for d in deadlines if d is not None) - now
        return left if left > 0 else TIMER_GRAIN

    def _timers(self, now: float) -> None:
        if self.link is not None:
            self.link.tick()
        self.registration.tick(now)
        self.pool.tick(now, self.stopping)
        self.status.tick(now)
        self.delivery.tick(now)

    # ------------------------------------------------------------------ MQTT

    def _on_connect(self) -> None:
        self.registration.start()
        self.status.update()
        self.delivery.on_connect(time.monotonic())

    def _on_mqtt(self, topic: str, payload: bytes) -> None:
        if self.delivery.ack(topic, payload):
            return
        w = self.control_topics.get(topic)
        if w is not None:
            self.modules.control(w, topic, payload)
        elif topic in self.registration.topics_in:
            self.registration.message(topic, payload)
            return
        self.router.from_mqtt(topic, payload)  # a module may also read a control topic

    # ------------------------------------------------------------------ refusal

    def _refused(self, why: str) -> None:
        """The orchestrator refused our identity (alive under another process): say so, exit 4."""
        self.refused = True
        self.exit_code = EXIT_DUPLICATE
        self.request_stop(f"refused by the orchestrator as a duplicate: {why}")
