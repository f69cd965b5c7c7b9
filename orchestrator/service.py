"""The running orchestrator: MQTT client, REST server, a decision thread and a ticker around one
`Orchestrator`.

Threads (issue #26: decisions never wait for reads):
- paho's network thread only stamps each message with its arrival time and queues it (`Inbound`):
  registrations, deletes, last wills and control messages ahead of keepalives;
- the decision thread (`orch-decide`) owns the `Orchestrator`: it handles queued messages (each
  one a short transaction), checks keepalive deadlines, publishes a snapshot for the REST reads
  (reads.py) and then sends what was decided;
- the HTTP server (rest.py, the standard library's `http.server`: a handful of GETs need no framework)
  answers reads in its own threads from the latest snapshot and read-only SQLite connections, no lock;
- the ticker thread checkpoints the WAL on its own connection.
Keepalive expiry is measured against a fence: docs/orchestrator.md, "Keepalive expiry".
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from common.broker import broker_list
from common.config import Config
from common.wire import new_uuid
from orchestrator import broker_drops, campaigns, metrics, views
from orchestrator.core import DELETE_TIMEOUT, Orchestrator
from orchestrator.model import MISSED_KEEPALIVES
from orchestrator.presence import Presence, presence_topic
from orchestrator.reads import Snapshot
from orchestrator.rest import RestServer, host_names, is_loopback, make_handler
from orchestrator.store import Store

SESSION_EXPIRY = 24 * 3600  # seconds the broker keeps the session (and queues for it) while we are away

BATCH = 256  # messages handled between two snapshots / sends (each still its own transaction)
SHARE = 64  # ... of which keepalives get at least this many when they wait (no starvation by creates)
PAUSE = 0.5  # seconds a wait may overrun before the process counts as paused or starved (keepalives get grace)
FENCE_RETRY = 1.0  # seconds before a fence that did not come back is sent again

log = logging.getLogger("orch")
mqlog = logging.getLogger("mq")

Item = tuple[str, bytes, float]  # topic, payload, arrival (monotonic)


def fence_topic(realm: str, instance: str) -> str:
    """Where the orchestrator sends itself fences (docs/orchestrator.md, "Keepalive expiry")."""
    return f"{realm}/proc/orchestrator/{instance}/fence"


class Inbound:
    """The messages paho received, waiting for the decision thread: two FIFOs. Everything but
    keepalives (registrations, deletes, last wills, control) goes first; keepalives and the
    fences, which must stay behind the keepalives received before them, go second."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._first: deque[Item] = deque()
        self._second: deque[Item] = deque()

    def put(self, topic: str, payload: bytes, arrived: float, *, second: bool) -> None:
        with self._cv:
            (self._second if second else self._first).append((topic, payload, arrived))
            self._cv.notify()

    def take(self, timeout: float) -> list[Item]:
        """Up to BATCH messages, wills and requests first (but at least SHARE waiting keepalives); [] after `timeout`."""
        with self._cv:
            if not self._first and not self._second:
                self._cv.wait(timeout)
            first, second = self._first, self._second
            out = [first.popleft() for _ in range(min(len(first), BATCH - min(len(second), SHARE)))]
            out += [second.popleft() for _ in range(min(len(second), BATCH - len(out)))]
            return out

    def wake(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def __len__(self) -> int:
        return len(self._first) + len(self._second)


class Service:
    """`start()` / `stop()` (idempotent) an orchestrator for `cfg`."""

    def __init__(self, cfg: Config, *, db_path: str, bind: str, http_port: int, ka_interval: float,
                 delete_timeout: float = DELETE_TIMEOUT, token: str | None = None,
                 identities: dict[str, tuple[str, str]] | None = None) -> None:
        if token is None and not is_loopback(bind):
            raise ValueError(f"the REST API on {bind} (beyond loopback) needs a token: --token-file FILE (or --bind 127.0.0.1)")
        self.cfg = cfg
        self.token = token
        self.identities = identities
        self.db_path = db_path
        self.bind = bind
        self.http_port = http_port
        self.ka_interval = ka_interval
        self.delete_timeout = delete_timeout
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.store: Store | None = None
        self.orch: Orchestrator | None = None
        self.http: RestServer | None = None
        self.client: mqtt.Client | None = None
        self._threads: list[threading.Thread] = []
        self._sub_mid: int | None = None
        self._warned_fail = False
        self.instance = new_uuid()  # this start of the orchestrator (presence.py)
        self.inbound = Inbound()
        self.drops = broker_drops.DropWatch()
        self.brokers = broker_list(cfg.mqtt, cfg.mqtt_port)  # failover order
        self._at = 0
        self.snapshot: Snapshot | None = None  # what REST reads see; replaced (never changed) by the decision thread
        self._pending: list[tuple[str, bytes]] = []  # decided, sent after the snapshot (decision thread)
        self._fence_topic = fence_topic(cfg.realm, self.instance)
        self._fence_sent: float | None = None  # monotonic time of the fence in flight
        self.heard_until = float("-inf")  # every message the broker had for us before this was handled
        self._grace_at: float | None = None  # a (re)connection: keepalive silence before it does not count
        self.stats = {"paused": 0, "fences": 0, "messages": 0}

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> "Service":
        self.store = Store(self.db_path, autocheckpoint=False)
        self.orch = Orchestrator(self.store, self._pending_append, realm=self.cfg.realm, ka_interval=self.ka_interval,
                                 delete_timeout=self.delete_timeout, instance=self.instance)
        self.orch.guard.identities = self.identities
        self.snapshot = self.orch.snapshots.publish()
        self.client = self._make_client()
        self.http = RestServer((self.bind, self.http_port), make_handler(self.answer), token=self.token,
                               hosts=host_names(self.bind, self.cfg.http))
        self.http_port = self.http.server_address[1]
        self._spawn("orch-http", self.http.serve_forever)
        self._spawn("orch-decide", self._decide_loop)
        self._spawn("orch-tick", self._tick_loop)
        log.info("REST API on http://%s:%d/api/ (store %s)", self.bind, self.http_port, self.db_path)
        mqlog.info("connecting to %s (realm %r)", self.broker, self.cfg.realm)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY
        self.client.connect_async(*self.brokers[0], keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self.client is not None:
            if self.connected.is_set() and self.orch is not None:  # retained: nodes see it until the next online
                info = self.client.publish(presence_topic(self.cfg.realm), self.orch.presence.offline(), qos=1, retain=True)
                try:
                    info.wait_for_publish(2.0)
                except (RuntimeError, ValueError):
                    pass
            self.client.disconnect()
            self.client.loop_stop()
        self.inbound.wake()
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        for t in self._threads:
            t.join(5)
        with self.lock:
            if self.store is not None:
                self.store.close()
        log.info("orchestrator stopped")

    def _spawn(self, name: str, target: Any) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _tick_loop(self) -> None:
        """WAL checkpoints, on their own connection, never inside a decision; and the pause watch:
        a wait that overran by more than PAUSE means this process did not run (SIGSTOP, a VM pause,
        a starved CPU); keepalives that came meanwhile may be lost in the broker, so nobody's silence
        before now counts (`Orchestrator.grace`)."""
        next_ckpt = time.monotonic() + 1.0
        step = 0.25
        while True:
            t0 = time.monotonic()
            if self.stopping.wait(step):
                return
            now = time.monotonic()
            if now - t0 > step + PAUSE:
                self.stats["paused"] += 1
                log.warning("the orchestrator did not run for %.1f s (paused or starved): every runtime gets"
                            " %d fresh keepalive intervals", now - t0 - step, MISSED_KEEPALIVES)
                self._grace_at = now
                self.inbound.wake()
            if now < next_ckpt:
                continue
            next_ckpt = now + 1.0
            if self.store is not None and not self.stopping.is_set():
                try:
                    self.store.checkpoint()
                except Exception as e:  # a busy or failing checkpoint is retried next second
                    log.warning("WAL checkpoint of %s failed: %s", self.db_path, e)

    # -- decisions ----------------------------------------------------------------------
    def _decide_loop(self) -> None:
        """Handle queued messages, check deadlines, publish a snapshot, then send what was decided."""
        o = self.orch
        assert o is not None
        period = max(0.05, min(1.0, self.ka_interval / 4)) if self.ka_interval > 0 else 1.0
        next_tick = time.monotonic()
        while not self.stopping.is_set():
            batch = self.inbound.take(max(0.0, next_tick - time.monotonic()))
            try:
                next_tick = self._decide(o, batch, next_tick, period)
            except Exception:  # a bug must not stop the decisions; say what broke
                log.exception("internal error in the decision loop")
                self._pending.clear()
                time.sleep(0.1)

    def _decide(self, o: Orchestrator, batch: list[Item], next_tick: float, period: float) -> float:
        """One batch: handle it, check deadlines when due (or a fence came back), publish the snapshot, send."""
        with self.lock:
            if self.stopping.is_set():
                return next_tick
            if self._grace_at is not None:
                o.grace(self._grace_at)
                self._grace_at = None
            fenced = False
            items = []
            for item in batch:
                if item[0] == self._fence_topic:
                    fenced |= self._fence_back(item[1])
                else:
                    items.append(item)
            o.handle_batch(items)  # one transaction (core.py); sent below, after the snapshot
            self.stats["messages"] += len(batch)
            now = time.monotonic()
            if fenced or now >= next_tick:
                next_tick = now + period
                self._deadlines(o, now)
            if self._pending or batch:
                self.snapshot = o.snapshots.publish()  # before the sends: a reply's effect is readable
            out, self._pending = self._pending, []
        for topic, payload in out:
            self._publish(topic, payload)
        return next_tick

    def _deadlines(self, o: Orchestrator, now: float) -> None:
        """Expire what the last fence proves silent; send a fence when a deadline passed since."""
        d = o.next_deadline()
        if d is not None and d < now and self.connected.is_set() and (
                self._fence_sent is None or now - self._fence_sent > FENCE_RETRY):
            self._fence_sent = now
            self.stats["fences"] += 1
            self._pending.append((self._fence_topic, repr(now).encode()))
        o.tick(now, heard_until=self.heard_until)

    def _fence_back(self, payload: bytes) -> bool:
        """Our fence came back: every message the broker had for us before it was sent has been handled."""
        try:
            sent = float(payload)
        except ValueError:
            return False
        self.heard_until = max(self.heard_until, sent)
        if self._fence_sent is not None and sent >= self._fence_sent:
            self._fence_sent = None
        return True

    def _heard_age(self) -> float | None:
        """Seconds since the newest fence that came back was sent (None: none came back yet)."""
        h = self.heard_until
        return None if h == float("-inf") else round(time.monotonic() - h, 3)

    def _pending_append(self, topic: str, payload: bytes) -> None:
        self._pending.append((topic, payload))

    # -- MQTT ---------------------------------------------------------------------------
    @property
    def broker(self) -> str:
        return "%s:%d" % self.brokers[self._at]

    def _make_client(self) -> mqtt.Client:
        # a persistent session named after realm + store: a restarted orchestrator (crash, SIGKILL) gets the
        # QoS 1 messages sent while it was away (a module's `exited`: campaigns must not lose it)
        key = hashlib.sha1(f"{self.cfg.realm}\0{os.path.abspath(self.db_path)}".encode()).hexdigest()[:12]
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"orchestrator-{key}", protocol=mqtt.MQTTv5)
        if self.cfg.mqtt_username:
            c.username_pw_set(self.cfg.mqtt_username, self.cfg.password())
        if self.cfg.use_ssl:
            c.tls_set(ca_certs=self.cfg.ssl_ca, certfile=self.cfg.ssl_cert, keyfile=self.cfg.ssl_key,
                      cert_reqs=ssl.CERT_REQUIRED)
            c.tls_insecure_set(self.cfg.ssl_insecure)
        # the retained offline announcement is our last will (presence.py); `online` is sent on every connect
        offline = (self.orch.presence if self.orch is not None else Presence(self.cfg.realm, instance=self.instance)).offline()
        c.will_set(presence_topic(self.cfg.realm), offline, qos=1, retain=True)
        c.reconnect_delay_set(1, 5)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        return c

    def _on_connect(self, c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            mqlog.error("broker %s refused the connection: %s", self.broker, rc)
            self._next_broker(c)
            return
        mqlog.info("connected to %s", self.broker)
        self._warned_fail = False
        sock = c.socket()
        if isinstance(sock, socket.socket):  # paho leaves Nagle on: a reply would wait for the last ACK (~40 ms)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connected.set()
        base = f"{self.cfg.realm}/proc"
        # no-local: the orchestrator's own replies and creates never come back to it; retain handling 2:
        # a retained request (anyone's, left on the broker) is never executed (issue #25)
        subs = [(f"{base}/{t}", SubscribeOptions(qos=q, noLocal=True, retainHandling=2))
                for t, q in (("reg/+", 2), ("keepalive/+", 1), ("control", 1), ("control/+", 1))]
        # ours: the profiles that say when a campaign cell is complete (campaigns.py on_profile)
        subs += [(f"{base}/profile/{t}/+/+", SubscribeOptions(qos=1, noLocal=True, retainHandling=2)) for t in campaigns.PROFILE_TYPES]
        subs.append((f"{base}/stored/+", SubscribeOptions(qos=1, noLocal=True, retainHandling=2)))  # ours: collectors' acks (campaigns/data.py)
        subs.append((self._fence_topic, SubscribeOptions(qos=0, noLocal=False)))  # our own fences come back
        subs += [(f"{base}/{t}", SubscribeOptions(qos=0, noLocal=True)) for t in ("stdio/+", "stdio/+/+")]  # output tails (history.py LOGS; per-node stdio too)
        self.drops.reset()
        subs.append((broker_drops.TOPIC, SubscribeOptions(qos=0)))  # the broker's drop counter (broker_drops.py)
        self._grace_at = time.monotonic()  # keepalives sent while we were away were not queued for us
        _, self._sub_mid = c.subscribe(subs)
        if self.orch is not None:  # after the subscriptions: a node's answer to it finds us listening
            c.publish(presence_topic(self.cfg.realm), self.orch.presence.online(), qos=1, retain=True)

    def _on_connect_fail(self, c: mqtt.Client, u: Any) -> None:
        if not self._warned_fail:
            mqlog.warning("cannot reach broker %s; retrying%s", self.broker, " (the next of the list)" * (len(self.brokers) > 1))
            self._warned_fail = True
        self._next_broker(c)

    def _next_broker(self, c: mqtt.Client) -> None:
        """paho reconnects to the next broker of the list (config `mqtt`, common/broker.py): same session id."""
        if len(self.brokers) > 1 and not self.stopping.is_set():
            self._at = (self._at + 1) % len(self.brokers)
            c._host, c._port = self.brokers[self._at]  # paho's setters refuse while its connection is "lost"

    def _on_subscribe(self, c: mqtt.Client, u: Any, mid: int, rcs: Any, props: Any = None) -> None:
        if mid == self._sub_mid:
            bad = [rc for rc in rcs if rc.is_failure]
            if bad:
                mqlog.error("broker refused subscriptions: %s", bad)
            else:
                self.subscribed.set()
                mqlog.info("subscribed to %s/proc/{reg,keepalive,control}", self.cfg.realm)

    def _on_disconnect(self, c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self.stopping.is_set():
            mqlog.warning("disconnected from broker %s (%s); reconnecting", self.broker, rc)
            self._next_broker(c)

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        if topic == broker_drops.TOPIC:
            self.drops.update(bytes(msg.payload))
            return
        self.inbound.put(topic, bytes(msg.payload), time.monotonic(),
                         second="/proc/keepalive/" in topic or topic == self._fence_topic)

    def _publish(self, topic: str, payload: bytes) -> None:
        if self.client is not None:
            self.client.publish(topic, payload, qos=0 if topic == self._fence_topic else 1)

    # -- REST ---------------------------------------------------------------------------
    def answer(self, path: str, query: str) -> tuple[int, Any]:
        if path.rstrip("/") == "/api/status":
            return 200, {"mqtt_connected": self.connected.is_set(), "subscribed": self.subscribed.is_set(),
                         "realm": self.cfg.realm, "broker": self.broker,
                         "ka_interval_sec": self.ka_interval, "store": self.db_path,
                         "inbound_waiting": len(self.inbound), "heard_until_age": self._heard_age(),
                         "quiet_refusals": self.orch.quiet_refusals if self.orch else 0,
                         "broker_drops": self.drops.total, "broker_drops_known": self.drops.known, **self.stats}
        snap, store = self.snapshot, self.store
        if snap is None or store is None or self.stopping.is_set():
            return 503, {"error": "orchestrator is stopping"}
        # no lock: the snapshot is immutable, the connection read-only (reads.py)
        with store.reader() as r:
            if path in metrics.PATHS:  # Prometheus text, bytes (metrics.py; rest.py sends them as they are)
                return 200, metrics.text(snap, r.conn, {**self.stats, "inbound_waiting": len(self.inbound),
                                                        "mqtt_connected": self.connected.is_set()})
            return views.answer(snap, r, path, query)
