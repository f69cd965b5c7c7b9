"""The node manager: one selector loop over the MQTT socket, the workers' shared up-queue, a signal
wakeup fd (and a terminal's stdin), routing everything between MQTT and the worker processes.

Shape of the loop (gunicorn's arbiter): wait -> handle signals -> handle MQTT -> drain workers ->
timers (registration, keepalive, restarts, watchdog) -> flush MQTT. Signal handlers do nothing but
let CPython's C handler write the signal number into the wakeup pipe; all the work happens here.
Workers are forked from this single thread only (no thread ever exists in the supervisor).
"""
from __future__ import annotations

import logging
import os
import platform
import selectors
import signal
import socket
import sys
import time
from typing import Any

import orjson

import ipc
from common.wire import ProtocolError, Topics, decode, encode, envelope
from ipc import messages as M
from common.exit_status import exit_status
from common.profile import decode_profile
from supervisor.channels import ChannelTable, SubscriptionChange
from supervisor.control import ControlRequest, parse_control
from supervisor.identity import load_identity
from supervisor.mqtt_link import MqttLink
from supervisor.notify import Notifier
from supervisor.registration import Registrar, manager_message, runtime_delete_message, runtime_message
from supervisor.settings import Settings
from supervisor.states import WorkerState
from common.topics import ChannelError, resolve
from supervisor.workers import ModuleRecord, Worker

log = logging.getLogger("mgr")
chlog = logging.getLogger("ch")

S = WorkerState
TIMER_GRAIN = 0.02  # seconds between looks at the timers while messages flow
DATA_SEND_TIMEOUT = 1.0  # a worker that does not drain its ring for this long loses the message (logged)


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.config
        self.topics = Topics(self.cfg.realm)
        self.stopping = False
        self.exit_code = 0
        self.ready_sent = False
        self.selector = selectors.DefaultSelector()
        self.table = ChannelTable()
        self.notifier = Notifier()
        ident = load_identity(settings.name, [r.full_name for r in settings.runtimes],
                              state_dir=settings.state_dir, manager_uuid=settings.manager_uuid)
        self.uuid = ident.manager
        self.workers: list[Worker] = []
        import runtimes

        for slot, choice in enumerate(settings.runtimes):
            spec = runtimes.get(choice.registry_name)
            cls = spec.load()
            rs = settings.runtime_settings.get(spec.name, {})
            w = Worker(slot, spec, cls, choice.full_name, ident.runtimes[choice.full_name], choice.cpus, rs)
            w.ka_interval = settings.ka_interval
            self.workers.append(w)
        self.by_uuid = {w.uuid: w for w in self.workers}
        self.control_topics = {self.topics.control(w.uuid): w for w in self.workers}
        self.reg_topics = {self.topics.reg(self.uuid)} | {self.topics.reg(w.uuid) for w in self.workers}
        self.node: Any = None
        self.link: MqttLink | None = None
        self.registrar = Registrar(timeout=settings.reg_timeout, send=self._send_reg, on_reply=self._reg_ok, on_done=self._registered)
        self._wake_r = self._wake_w = -1
        self._next_watchdog = 0.0
        self._stop_deadline = 0.0
        self._corrupt_pids: set[int] = set()  # workers killed for a corrupt ring (see _ring_corrupt)
        self._draining: set[int] = set()  # worker slots being drained from inside _write_to

    # ------------------------------------------------------------------ start / stop

    def run(self) -> int:
        """Fork the workers, connect, serve until stopped; returns the exit code."""
        removed = ipc.cleanup_stale(self.settings.backend)
        if removed:
            log.info("removed %d stale IPC objects of dead supervisors", len(removed))
        self.node = ipc.NodeIPC(backend=self.settings.backend, ring_capacity=self.settings.ring_capacity, spin=self.settings.spin)
        try:
            self._setup_signals()
            if self.settings.stdin_commands and sys.stdin is not None and sys.stdin.isatty():
                self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
                log.info("type q or quit (then Enter) to stop")
            self._log_cpus()
            # Fork every worker before anything else exists (no socket yet; and with the sysv backend
            # `fileno()` starts a helper thread, so it is asked for only after these forks).
            for w in self.workers:
                self._spawn(w)
            self.selector.register(self.node.fileno(), selectors.EVENT_READ, "ipc")
            will = (self.topics.reg(self.uuid), encode(manager_message(self.uuid, self.settings.name, "delete")), 2)
            self.link = MqttLink(self.cfg, client_id=f"sl-{self.settings.name}-{self.uuid[:8]}-{os.getpid()}",
                                 selector=self.selector, on_message=self._on_mqtt, on_connect=self._on_connect, will=will)
            for topic in sorted(self.reg_topics):
                self.link.subscribe(topic, 1)
            for topic in self.control_topics:
                self.link.subscribe(topic, 1)
            log.info("node %s (manager %s), runtimes: %s", self.settings.name, self.uuid,
                     ", ".join(f"{w.name}={w.spec.name} ({w.uuid})" for w in self.workers))
            self.notifier.status("connecting to MQTT")
            self.link.connect()
            self._loop()
        except Exception:
            log.critical("supervisor failed; stopping the node", exc_info=True)
            self.exit_code = 1
        finally:
            self._shutdown()
        return self.exit_code

    def request_stop(self, why: str) -> None:
        if self.stopping:
            return
        log.info("stopping (%s)", why)
        self.stopping = True
        self.notifier.stopping()
        self._stop_deadline = time.monotonic() + self.settings.stop_timeout
        for w in self.workers:
            if w.state in (S.STARTING, S.RUNNING):
                w.change_state(S.STOPPING, why)  # STARTING|RUNNING -> STOPPING
                self._send(w, M.ctrl(0), M.MGR_STOP)
            elif w.state in (S.BACKOFF, S.FATAL):
                w.change_state(S.STOPPED, why)  # BACKOFF|FATAL -> STOPPED

    def _shutdown(self) -> None:
        """Every exit path: kill what is left, reap, delete registrations, unlink IPC, disconnect."""
        try:
            for w in self.workers:
                if w.pid is not None:
                    w.logger.warning("worker did not stop in time: SIGKILL")
                    try:
                        os.kill(w.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            while any(w.pid is not None for w in self.workers):  # SIGKILLed: they do end
                if not self._reap(block=True):
                    break
            if self.link is not None and self.link.connected:
                for w in self.workers:
                    self.link.publish(self.topics.reg(w.uuid), encode(runtime_delete_message(w.uuid, w.name)), 1)
                self.link.publish(self.topics.reg(self.uuid), encode(manager_message(self.uuid, self.settings.name, "delete")), 1)
                self.link.flush()
        finally:
            if self.link is not None:
                self.link.close()
            if self.node is not None:
                self.node.close()
            self._restore_signals()
            self.notifier.close()
            self.selector.close()
            log.info("stopped")

    # ------------------------------------------------------------------ signals

    def _setup_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self._old_handlers = {}
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
            # the C-level handler writes the number into the pipe; the Python one has nothing to do
            self._old_handlers[sig] = signal.signal(sig, lambda s, f: None)
        self.selector.register(self._wake_r, selectors.EVENT_READ, "signal")

    def _restore_signals(self) -> None:
        if self._wake_r < 0:
            return
        signal.set_wakeup_fd(self._old_wakeup)
        for sig, h in self._old_handlers.items():
            signal.signal(sig, h)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r = self._wake_w = -1

    def _handle_signals(self) -> None:
        try:
            data = os.read(self._wake_r, 512)
        except BlockingIOError:
            return
        for signum in set(data):
            if signum == signal.SIGCHLD:
                self._reap()
            elif signum in (signal.SIGTERM, signal.SIGINT):
                self.request_stop(signal.Signals(signum).name)
            elif signum == signal.SIGHUP:
                log.info("SIGHUP: nothing to reload (restart the node to change its configuration)")

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        # Timers (registration, keepalive, restarts, watchdog, reconnect) are looked at most every
        # TIMER_GRAIN seconds: on the message path the loop does only select, drain and flush.
        timer_due = 0.0
        drain_ipc = False
        while True:
            now = time.monotonic()
            if now >= timer_due:
                if self.stopping and all(w.pid is None for w in self.workers):
                    return
                if self.stopping and now >= self._stop_deadline:
                    return  # _shutdown kills the stragglers
                self._timers()
                timeout = min(self._timeout(), TIMER_GRAIN)
                timer_due = now + timeout
            else:
                timeout = timer_due - now
            held = self.link is not None and self.link.backlog()  # backpressure: wait for the socket
            pending = self.node.before_sleep() and not held
            events = self.selector.select(0 if pending else timeout)
            self.node.after_wake()
            for key, mask in events:
                what = key.data
                if what == "ipc":
                    drain_ipc = True
                elif what == "signal":
                    self._handle_signals()
                    timer_due = 0.0
                elif what == "stdin":
                    self._handle_stdin()
                elif isinstance(what, MqttLink):
                    what.handle(mask)
            if not (self.link is not None and self.link.backlog()):
                self._drain_workers()
            if drain_ipc:  # after the rings: the message that rang is handled first
                self.node.drain_doorbells()
                drain_ipc = False
            if self.link is not None:
                self.link.flush()

    def _timeout(self) -> float:
        now = time.monotonic()
        t = now + 1.0
        for d in (self.registrar.next_deadline(), self.link.next_deadline() if self.link else None):
            if d is not None:
                t = min(t, d)
        for w in self.workers:
            if w.state is S.BACKOFF:
                t = min(t, w.restart_at)
            elif w.state is S.STARTING:
                t = min(t, w.started_at + self.settings.startsecs)
            if w.ka_interval > 0 and w.next_keepalive:
                t = min(t, w.next_keepalive)
        if self._next_watchdog:
            t = min(t, self._next_watchdog)
        if self.stopping:
            t = min(t, self._stop_deadline)
        return max(0.0, t - now)

    def _timers(self) -> None:
        now = time.monotonic()
        if self.link is not None:
            self.link.tick()
        self.registrar.tick()
        for w in self.workers:
            if w.state is S.STARTING and w.pid is not None and w.booted and now - w.started_at >= self.settings.startsecs:
                w.change_state(S.RUNNING, f"up for {self.settings.startsecs}s")  # STARTING -> RUNNING
                w.failures = 0
                self._update_status()
            elif w.state is S.BACKOFF and now >= w.restart_at and not self.stopping:
                self._spawn(w)
            if w.ka_interval > 0 and w.next_keepalive and now >= w.next_keepalive and w.state in (S.RUNNING, S.STARTING):
                self._publish_keepalive(w)
            if self.settings.worker_timeout and w.state is S.RUNNING and w.pid is not None:
                self._check_heartbeat(w, now)
        wd = self.notifier.watchdog_interval()
        if wd:
            if now >= self._next_watchdog:
                self.notifier.watchdog()
                self._next_watchdog = now + wd

    def _check_heartbeat(self, w: Worker, now: float) -> None:
        """gunicorn's two-step kill of a hung worker: SIGABRT (faulthandler prints where it hangs),
        then SIGKILL after a grace; the death then goes through the normal restart policy."""
        assert w.pid is not None
        if w.abort_sent:
            if now - w.abort_sent >= 2.0:
                w.logger.error("worker ignored SIGABRT: SIGKILL")
                self._kill(w.pid, signal.SIGKILL)
                w.abort_sent = now + 3600.0  # once
        elif now - w.last_heard >= self.settings.worker_timeout:
            w.logger.error("worker silent for %.1fs (--worker-timeout): SIGABRT", now - w.last_heard)
            self._kill(w.pid, signal.SIGABRT)
            w.abort_sent = now

    @staticmethod
    def _kill(pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def _handle_stdin(self) -> None:
        line = sys.stdin.readline()
        if not line:
            self.selector.unregister(sys.stdin.fileno())
            return
        if line.strip().lower() in ("q", "quit", "exit"):
            self.request_stop("quit on stdin")

    # ------------------------------------------------------------------ workers

    def _close_fds_for_child(self) -> list[int]:
        fds = [self._wake_r, self._wake_w]
        try:
            fds.append(self.selector.fileno())
        except (AttributeError, ValueError):
            pass
        if self.link is not None and self.link._sock is not None:
            fds.append(self.link._sock.fileno())
        return [fd for fd in fds if fd >= 0]

    def _spawn(self, w: Worker) -> None:
        ka = max(0.5, min(5.0, w.ka_interval / 2 if w.ka_interval > 0 else 5.0))
        if self.settings.worker_timeout:
            ka = max(0.1, min(ka, self.settings.worker_timeout / 3))  # heartbeats well inside the timeout
        base = {"realm": self.cfg.realm, "log_level": self.settings.log_level, "keepalive_interval": ka}
        try:
            w.spawn(self.node, base, self._close_fds_for_child())
        except Exception as e:
            log.exception("cannot start worker %s: %s", w.name, e)
            if w.ep is not None:
                self.node.remove_worker(w.slot)
                w.ep = None
            w.change_state(S.FATAL, "spawn failed")  # STARTING -> FATAL
            self._runtime_fatal(w)
            return
        for rec in sorted(w.modules.values(), key=lambda r: r.index):
            if rec.pending_create:
                rec.pending_create = False
                self._send_create(w, rec)
        self._update_status()

    def _reap(self, block: bool = False) -> bool:
        """Reap every ended child (one SIGCHLD may stand for several); True if one was reaped."""
        got = False
        while True:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return got
            if pid == 0:
                return got
            got = True
            block = False
            code = os.waitstatus_to_exitcode(status)
            w = next((x for x in self.workers if x.pid == pid), None)
            if w is not None:
                self._worker_died(w, code)

    def _worker_died(self, w: Worker, code: int) -> None:
        if w.ep is not None:  # what it said before dying (exited messages, logs) still counts
            self._drain_worker(w)
            self.node.remove_worker(w.slot)
            w.ep = None
        for change in self.table.close_worker(w.slot):
            self._apply(change)
        was_stopping = self.stopping or w.state is S.STOPPING
        new = w.died(code, self.stopping, self.settings.start_retries, self.settings.backoff)
        if was_stopping:
            w.logger.info("worker exited (%s)", code)
            return
        for rec in sorted(w.modules.values(), key=lambda r: r.index):
            restart = (rec.data.get("args") or {}).get("fault_crash") == "restart" and new is S.BACKOFF and not rec.deleting
            if restart:
                rec.pending_create = True
                w.logger.warning("module %s (%s) was on the dead worker: fault_crash=restart, re-created at restart", rec.name, rec.uuid)
            else:
                w.pop_module(rec.index)
                self._publish_exited(w, rec, exit_status("crashed", None, f"worker process of runtime {w.name} died (exit {code})"))
        if new is S.FATAL:
            self._runtime_fatal(w)
        self._update_status()

    def _runtime_fatal(self, w: Worker) -> None:
        for rec in list(w.modules.values()):
            w.pop_module(rec.index)
            self._publish_exited(w, rec, exit_status("crashed", None, f"runtime {w.name} is FATAL"))
        if self.link is not None:
            self.link.publish(self.topics.reg(w.uuid), encode(runtime_delete_message(w.uuid, w.name)), 1)
        self._log_error(f"runtime {w.name} ({w.spec.name}) failed to start {w.failures} times in a row and is FATAL; deleted at the orchestrator")

    def _send(self, w: Worker, h1: int, h2: int, payload: bytes = b"", timeout: float = 5.0) -> bool:
        if w.ep is None:
            return False
        try:
            self._write_to(w, h1, h2, payload, timeout)
            return True
        except ipc.IPCError as e:
            w.logger.error("cannot send to worker: %s", e)
            return False

    def _write_to(self, w: Worker, h1: int, h2: int, payload: bytes, timeout: float) -> None:
        """Write into a worker's ring; while it is full, keep draining that worker's own ring.

        Regression (chaos fuzz, channel_open): the supervisor blocked on a full tx ring while the
        worker blocked on its full rx ring, each waiting for the other: progress only by timeouts,
        and the messages that timed out were lost. A worker never waits for us while we wait for it now.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                w.ep.send(h1, h2, payload, 0)
                return
            except ipc.RingFullError:
                if time.monotonic() >= deadline or w.ep is None:
                    raise
            if w.slot not in self._draining:  # not from inside a drain of this worker (loopback)
                self._draining.add(w.slot)
                try:
                    self._drain_worker(w)
                finally:
                    self._draining.discard(w.slot)
            time.sleep(0.0002)
            if w.ep is None:
                raise ipc.ClosedError(f"worker {w.name} is gone")

    def _drain_workers(self) -> None:
        for w in self.workers:
            if w.ep is not None:
                self._drain_worker(w)

    def _drain_worker(self, w: Worker) -> None:
        for n in range(64):  # bounded: one chatty worker must not starve MQTT and the others
            try:
                msgs = w.ep.drain()
            except ipc.IPCError as e:
                self._ring_corrupt(w, e)
                return
            if not msgs:
                if n and self.settings.worker_timeout:
                    w.last_heard = time.monotonic()
                return
            for msg in msgs:
                try:
                    self._from_worker(w, msg)
                except Exception:
                    w.logger.exception("error handling message %02x.%02x from the worker", msg.h1, msg.h2)

    def _ring_corrupt(self, w: Worker, e: Exception) -> None:
        """A worker's ring cannot be read (corrupt indexes or record): the worker is broken, not the node.

        Regression (chaos fuzz, ipc_records): the BadMessage used to end the supervisor's loop.
        SIGKILL the worker once; it is reaped and restarted with new rings like any crash.
        """
        if w.pid is not None and w.pid not in self._corrupt_pids:  # once per process: it is dying
            self._corrupt_pids.add(w.pid)
            self._log_error(f"runtime {w.name}: its IPC ring is corrupt ({e}); killing the worker, it restarts with new rings")
            try:
                os.kill(w.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _from_worker(self, w: Worker, msg: Any) -> None:
        h1, h2, payload = msg.h1, msg.h2, msg.payload
        index = h1 & M.INDEX_MASK
        if not h1 & M.CONTROL:
            self._publish_from(w, index, h2, payload)
            return
        if h2 == M.RT_KEEPALIVE:
            w.booted = True  # the base class sends one keepalive when its loop starts
            try:
                fields = orjson.loads(payload)
                if isinstance(fields, dict):
                    w.ka_fields = fields
            except orjson.JSONDecodeError as e:
                w.logger.error("keepalive from the worker is not JSON: %s", e)
        elif h2 == M.RT_LOG:
            level, text = M.decode_log(payload)
            logging.getLogger(f"rt.{w.name}").log(level, "%s", text)
        elif h2 == M.RT_MODLOG:
            level, text = M.decode_log(payload)
            rec = w.modules.get(index)
            logging.getLogger(f"rt.{w.name}").log(level, "[%s] %s", rec.name if rec else f"#{index}", text)
        elif h2 == M.RT_EXITED:
            self._module_exited(w, index, payload)
        elif h2 == M.RT_OPEN:
            self._open_channel(w, index, payload)
        elif h2 == M.RT_CLOSE:
            try:
                fd = M.decode_close(payload)
                self._apply(self.table.close(w.slot, index, fd))
            except (ipc.BadMessage, ChannelError) as e:
                self._log_error(f"runtime {w.name}: close channel: {e}", logger=chlog)
        elif h2 == M.RT_PROFILE:
            rec = w.modules.get(index)
            try:
                ptype, data = decode_profile(payload)
            except ValueError as e:
                w.logger.error("bad profile message for module %d: %s", index, e)
                return
            if rec is None:
                w.logger.error("profile data for empty module slot %d dropped", index)
                return
            if self.link is not None:
                self.link.publish(self.topics.profile(ptype, w.uuid, rec.uuid), data, 1)
        else:
            w.logger.error("unknown message type %d from the worker (module %d)", h2, index)

    # ------------------------------------------------------------------ modules

    def _send_create(self, w: Worker, rec: ModuleRecord) -> None:
        body = dict(rec.data)
        body["index"] = rec.index
        raw = orjson.dumps(body)
        limit = w.ep.tx.max_payload if w.ep is not None else None
        if limit is not None and len(raw) > limit:
            # Regression (chaos fuzz): such a create stayed pending forever, silently
            w.pop_module(rec.index)
            self._log_error(f"create of module {rec.uuid}: the message is {len(raw)} bytes, more than a worker "
                            f"takes ({limit} bytes); refused", payload=raw)
            self._publish_exited(w, rec, exit_status("error", None, f"create message of {len(raw)} bytes is larger than {limit} bytes"))
            return
        if not self._send(w, M.ctrl(rec.index), M.MGR_CREATE, raw):
            rec.pending_create = True

    def _module_exited(self, w: Worker, index: int, payload: bytes) -> None:
        rec = w.pop_module(index)
        try:
            body = orjson.loads(payload) if payload else {}
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as e:
            w.logger.error("exited message of module %d is not a JSON object (%s)", index, e)
            body = {}
        for change in self.table.close_module(w.slot, index):
            self._apply(change)
        if rec is None:
            w.logger.error("exited message for empty module slot %d", index)
            return
        rs = body.get("status")
        st: dict[str, Any] = rs if isinstance(rs, dict) else {}
        status = exit_status(str(st.get("reason") or "exited"), st.get("code"), st.get("error"))
        extra = {k: v for k, v in body.items() if k not in ("status", "uuid", "type")}
        self._publish_exited(w, rec, status, extra)

    def _publish_exited(self, w: Worker, rec: ModuleRecord, status: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        data: dict[str, Any] = {"type": "module", "uuid": rec.uuid, "name": rec.name}
        data.update(extra or {})
        data["status"] = status
        w.logger.info("module %s (%s) exited: %s", rec.name, rec.uuid, status)
        if self.link is not None:
            self.link.publish(self.topics.control(w.uuid), encode(envelope("exited", data)), 1)

    def _control(self, w: Worker, topic: str, payload: bytes) -> None:
        try:
            req = parse_control(payload, where=f"control message on {topic}")
        except ProtocolError as e:
            self._log_error(str(e), payload=payload)
            return
        if req is None:
            return
        if req.action == "create":
            self._create(w, req, payload)
        else:
            self._delete(w, req, payload)

    def _create(self, w: Worker, req: ControlRequest, raw: bytes) -> None:
        if req.uuid in w.by_uuid:
            self._log_error(f"create: module {req.uuid} already exists on runtime {w.name}", payload=raw)
            return
        if w.state in (S.FATAL, S.STOPPED, S.STOPPING):
            self._log_error(f"create of module {req.uuid}: runtime {w.name} is {w.state.value}", payload=raw)
            return
        index = w.free_index()
        if index is None:
            self._log_error(f"create of module {req.uuid}: runtime {w.name} is full (max_nmodules {w.max_nmodules})", payload=raw)
            return
        data = dict(req.data)
        data.pop("index", None)  # the orchestrator's database id: we use our own slot index
        rec = ModuleRecord(index, req.uuid, str(data.get("name") or req.uuid), data, req.grants)
        w.add_module(rec)
        w.logger.info("create module %s (%s) in slot %d", rec.name, rec.uuid, index)
        if w.ep is None:
            rec.pending_create = True  # worker in BACKOFF: delivered when it is back
        else:
            self._send_create(w, rec)

    def _delete(self, w: Worker, req: ControlRequest, raw: bytes) -> None:
        index = w.by_uuid.get(req.uuid)
        if index is None:
            self._log_error(f"delete: unknown module {req.uuid} on runtime {w.name}", payload=raw)
            return
        rec = w.modules[index]
        rec.deleting = True
        w.logger.info("delete module %s (%s)", rec.name, rec.uuid)
        if rec.pending_create or w.ep is None:
            w.pop_module(index)
            self._publish_exited(w, rec, exit_status("deleted", None, None))
            return
        self._send(w, M.ctrl(index), M.MGR_DELETE)

    # ------------------------------------------------------------------ channels

    def _open_channel(self, w: Worker, index: int, payload: bytes) -> None:
        rec = w.modules.get(index)
        try:
            fd, flags, topic = M.decode_open(payload)
            if rec is None:
                raise ChannelError(f"open channel for empty module slot {index}")
            mqtt_topic = resolve(topic, flags, realm=self.cfg.realm, module_uuid=rec.uuid,
                                 grants=rec.grants if self.settings.access_control else None)
            self._apply(self.table.open(w.slot, index, fd, flags, mqtt_topic))
            chlog.debug("%s: module %s opened channel %d on %s (flags %#x)", w.name, rec.name, fd, mqtt_topic, flags)
        except (ipc.BadMessage, ChannelError) as e:
            who = f"module {rec.name} ({rec.uuid})" if rec else f"slot {index}"
            self._log_error(f"runtime {w.name}, {who}: channel refused: {e}", logger=chlog)

    def _apply(self, change: SubscriptionChange) -> None:
        if self.link is None:
            return
        if change.unsubscribe:
            chlog.debug("unsubscribe %s (its last reader closed)", change.unsubscribe)
            self.link.unsubscribe(change.unsubscribe)
        if change.subscribe:
            chlog.debug("subscribe %s (QoS %d)", *change.subscribe)
            self.link.subscribe(*change.subscribe)

    def _publish_from(self, w: Worker, index: int, fd: int, payload: bytes) -> None:
        try:
            ch = self.table.writer(w.slot, index, fd)
        except ChannelError as e:
            chlog.error("%s: %s (message of %d bytes dropped)", w.name, e, len(payload))
            return
        for r in self.table.loopback(ch):  # local receivers first: they are the cheaper, faster hop
            self._deliver(r.slot, r.index, r.fd, payload)
        if self.link is not None:
            self.link.publish(ch.topic, payload, ch.qos)

    def _deliver(self, slot: int, index: int, fd: int, payload: bytes) -> None:
        w = self.workers[slot]
        if w.ep is None:
            return
        try:
            self._write_to(w, index, fd, payload, DATA_SEND_TIMEOUT)
        except ipc.IPCError as e:
            chlog.error("%s: message for module %d channel %d lost: %s", w.name, index, fd, e)

    # ------------------------------------------------------------------ MQTT

    def _on_connect(self) -> None:
        self.notifier.status("registering")
        self._register()

    def _register(self) -> None:
        rts = []
        for w in self.workers:
            if w.state is S.FATAL:
                continue
            rts.append((w.uuid, f"runtime {w.name}", self._runtime_registration(w)))
        self.registrar.start((self.uuid, f"manager {self.settings.name}", manager_message(self.uuid, self.settings.name)), rts)

    def _runtime_registration(self, w: Worker) -> dict[str, Any]:
        extra = w.cls.registration(w.settings) or {}
        plat = {"cpu": platform.machine(), "system": platform.system(), "release": platform.release(),
                "python": platform.python_version(), "cpus": os.cpu_count()}
        plat.update(self.cfg.platform or {})
        plat.update(extra.get("platform") or {})
        meta: dict[str, Any] = {"runtime": w.spec.name, "host": socket.gethostname(), "pid": os.getpid(),
                                "cpus": sorted(w.cpus) if w.cpus else sorted(os.sched_getaffinity(0))}
        meta.update(extra.get("metadata") or {})
        return runtime_message(uuid=w.uuid, name=w.name, runtime_type=w.cls.RUNTIME_TYPE, max_nmodules=w.max_nmodules,
                               apis=list(w.cls.APIS), platform=plat, metadata=meta, parent=self.uuid)

    def _send_reg(self, uuid: str, msg: dict[str, Any]) -> None:
        if self.link is not None:
            self.link.publish(self.topics.reg(uuid), encode(msg), 1)

    def _reg_ok(self, uuid: str, details: dict[str, Any]) -> None:
        ka = details.get("ka_interval_sec")
        if isinstance(ka, (int, float)) and not isinstance(ka, bool) and ka >= 0:
            w = self.by_uuid.get(uuid)
            for x in [w] if w else self.workers:
                x.ka_interval = float(ka)
                x.next_keepalive = time.monotonic() + float(ka) if ka > 0 else 0.0

    def _registered(self) -> None:
        for w in self.workers:
            if w.ka_interval > 0 and not w.next_keepalive:
                w.next_keepalive = time.monotonic()
        if not self.ready_sent:
            self.ready_sent = True
            self.notifier.ready(self._status_text())
            wd = self.notifier.watchdog_interval()
            if wd:
                self._next_watchdog = time.monotonic()
        log.info("registration done: %s", self._status_text())

    def _publish_keepalive(self, w: Worker) -> None:
        data: dict[str, Any] = {"type": "runtime", "uuid": w.uuid, "name": w.name, "apis": list(w.cls.APIS), "children": []}
        data.update(w.ka_fields)
        data.update({"type": "runtime", "uuid": w.uuid, "name": w.name})
        if self.link is not None:
            self.link.publish(self.topics.keepalive(w.uuid), encode(envelope("update", data)), 0)
        w.next_keepalive = time.monotonic() + w.ka_interval

    def _on_mqtt(self, topic: str, payload: bytes) -> None:
        w = self.control_topics.get(topic)
        if w is not None:
            self._control(w, topic, payload)
        elif topic in self.reg_topics:
            try:
                msg = decode(payload, where=f"message on {topic}")
            except ProtocolError as e:
                log.warning("%s", e)
                return
            if msg.get("type") == "resp":
                self.registrar.reply(msg)
            return
        readers = self.table.readers(topic)
        if not readers:
            chlog.debug("message on %s matches no channel", topic)
        for r in readers:
            self._deliver(r.slot, r.index, r.fd, payload)

    def _log_error(self, text: str, *, payload: bytes | None = None, logger: logging.Logger = log) -> None:
        """An error the sender should see: our log and `{realm}/proc/log`."""
        logger.error("%s", text)
        data: dict[str, Any] = {"error": text, "node": self.settings.name, "manager": self.uuid}
        if payload is not None:
            data["payload"] = payload[:1024].decode("utf-8", "replace")
        if self.link is not None:
            self.link.publish(self.topics.log, encode(envelope("error", data, type="resp")), 1)

    # ------------------------------------------------------------------ status

    def _status_text(self) -> str:
        counts: dict[str, int] = {}
        for w in self.workers:
            counts[w.state.value] = counts.get(w.state.value, 0) + 1
        mods = sum(len(w.modules) for w in self.workers)
        return f"{len(self.workers)} runtimes ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}), {mods} modules"

    def _update_status(self) -> None:
        self.notifier.status(self._status_text())

    def _log_cpus(self) -> None:
        if not any(w.cpus for w in self.workers):
            return
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            log.info("CPU pinning with sched_setaffinity (cgroup v2 cpusets are not managed by this node)")
        else:
            log.info("CPU pinning with sched_setaffinity only: no cgroup v2 hierarchy at /sys/fs/cgroup")
