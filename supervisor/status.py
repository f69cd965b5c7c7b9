"""What the node tells systemd (sd_notify, notify.py): READY once the workers run (broker or no
broker: a unit must not time out at boot while the broker is down), STATUS = what the node waits
for or else its runtimes and modules (sent when it changes, looked at every second), WATCHDOG
pings from the start, STOPPING. It also runs the node's metrics endpoint when one is asked for
(`--metrics-port`, supervisor/metrics.py), from READY (the workers are forked) to the stop."""
from __future__ import annotations

import logging
import time
from typing import Callable

from supervisor.metrics import MetricsServer
from supervisor.mqtt_link import MqttLink
from supervisor.notify import Notifier
from supervisor.pool import WorkerPool
from supervisor.registration import NodeRegistration

log = logging.getLogger("mgr")

STATUS_EVERY = 1.0  # seconds between looks at what STATUS should say


class NodeStatus:
    def __init__(self, notifier: Notifier, pool: WorkerPool, registration: NodeRegistration,
                 spool: Callable[[], str] | None = None) -> None:
        self.notifier = notifier
        self.spool = spool  # what the result spool holds (delivery.py), "" when nothing
        self.pool = pool
        self.registration = registration
        self.link: MqttLink | None = None  # set once the node connects
        self.ready_sent = False
        self.stopping = False
        self._status = ""
        self._next_status = 0.0
        self._next_watchdog = 0.0
        self.metrics: MetricsServer | None = None

    def ready(self, text: str) -> None:
        self.ready_sent = True
        self.notifier.ready(text)
        port = self.pool.settings.metrics_port
        if port is not None and self.metrics is None:
            try:
                self.metrics = MetricsServer(self.pool.settings.name, self.pool.workers, port).start()
            except OSError as e:  # the node runs on without it; say what is wrong
                log.error("cannot serve metrics on 127.0.0.1:%d: %s (--metrics-port)", port, e.strerror)
        if self.notifier.watchdog_interval():
            self._next_watchdog = time.monotonic()

    def registered(self) -> None:
        log.info("registration done: %s", self.pool.status_text())
        self.update()

    def update(self) -> None:
        """STATUS: what the node waits for, else its runtimes and modules (sent when it changes)."""
        if self.stopping:
            return  # STATUS=stopping stays
        text = self.pool.status_text()
        held = self.spool() if self.spool is not None else ""
        if held:
            text = f"{text}; {held}"
        if self.link is not None and not self.link.connected:
            text = f"waiting for MQTT broker {self.link.address}; {text}"
        elif (waiting := self.registration.waiting_for()) is not None:
            text = f"{waiting}; {text}"
        if text != self._status:
            self._status = text
            self.notifier.status(text)

    def tick(self, now: float) -> None:
        wd = self.notifier.watchdog_interval()
        if wd and now >= self._next_watchdog:
            self.notifier.watchdog()
            self._next_watchdog = now + wd
        if now >= self._next_status:
            self._next_status = now + STATUS_EVERY
            self.update()

    def next_deadline(self) -> float | None:
        return self._next_watchdog or None

    def stop(self) -> None:
        self.stopping = True
        self.notifier.stopping()

    def close(self) -> None:
        self.notifier.close()
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
