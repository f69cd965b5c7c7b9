"""The running orchestrator: MQTT client, REST server and keepalive ticker around one
`Orchestrator`, all serialised by one lock.

Threads: paho's network thread handles messages (each one a short transaction), a
ticker thread checks keepalives, the HTTP server answers reads in its own threads. The
REST API uses only the standard library (`http.server`): it serves a handful of GETs
to operators and scripts, so a framework would add a dependency and nothing else.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from common.config import Config
from common.wire import new_uuid
from orchestrator import campaigns, dashboard, views
from orchestrator.core import DELETE_TIMEOUT, Orchestrator
from orchestrator.presence import Presence, presence_topic
from orchestrator.store import Store

SESSION_EXPIRY = 24 * 3600  # seconds the broker keeps the session (and queues for it) while we are away

log = logging.getLogger("orch")
mqlog = logging.getLogger("mq")


class Service:
    """`start()` / `stop()` (idempotent) an orchestrator for `cfg`."""

    def __init__(self, cfg: Config, *, db_path: str, bind: str, http_port: int, ka_interval: float,
                 delete_timeout: float = DELETE_TIMEOUT) -> None:
        self.cfg = cfg
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
        self.http: ThreadingHTTPServer | None = None
        self.client: mqtt.Client | None = None
        self._threads: list[threading.Thread] = []
        self._sub_mid: int | None = None
        self._warned_fail = False
        self.instance = new_uuid()  # this start of the orchestrator (presence.py)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> "Service":
        self.store = Store(self.db_path, autocheckpoint=False)
        self.orch = Orchestrator(self.store, self._publish, realm=self.cfg.realm, ka_interval=self.ka_interval,
                                 delete_timeout=self.delete_timeout, instance=self.instance)
        self.client = self._make_client()
        self.http = ThreadingHTTPServer((self.bind, self.http_port), _make_handler(self))
        self.http.daemon_threads = True
        self.http_port = self.http.server_address[1]
        self._spawn("orch-http", self.http.serve_forever)
        self._spawn("orch-tick", self._tick_loop)
        log.info("REST API on http://%s:%d/api/ (store %s)", self.bind, self.http_port, self.db_path)
        mqlog.info("connecting to %s:%d (realm %r)", self.cfg.mqtt, self.cfg.mqtt_port, self.cfg.realm)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY
        self.client.connect_async(self.cfg.mqtt, self.cfg.mqtt_port, keepalive=30, clean_start=False, properties=props)
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
        """Keepalive deadlines (under the lock) and WAL checkpoints (outside it, own connection)."""
        period = max(0.05, min(1.0, self.ka_interval / 4)) if self.ka_interval > 0 else 1.0
        next_ckpt = time.monotonic() + 1.0
        while not self.stopping.wait(period):
            with self.lock:
                if self.orch is not None and not self.stopping.is_set():
                    self.orch.tick()
            if time.monotonic() >= next_ckpt and self.store is not None and not self.stopping.is_set():
                next_ckpt = time.monotonic() + 1.0
                try:
                    self.store.checkpoint()
                except Exception as e:  # a busy or failing checkpoint is retried next second
                    log.warning("WAL checkpoint of %s failed: %s", self.db_path, e)

    # -- MQTT ---------------------------------------------------------------------------
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
            mqlog.error("broker %s:%d refused the connection: %s", self.cfg.mqtt, self.cfg.mqtt_port, rc)
            return
        mqlog.info("connected to %s:%d", self.cfg.mqtt, self.cfg.mqtt_port)
        self._warned_fail = False
        sock = c.socket()
        if isinstance(sock, socket.socket):  # paho leaves Nagle on: a reply would wait for the last ACK (~40 ms)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connected.set()
        base = f"{self.cfg.realm}/proc"
        # no-local: the orchestrator's own replies and creates never come back to it
        subs = [(f"{base}/reg/+", SubscribeOptions(qos=2, noLocal=True)),
                (f"{base}/keepalive/+", SubscribeOptions(qos=1, noLocal=True)),
                (f"{base}/control", SubscribeOptions(qos=1, noLocal=True)),
                (f"{base}/control/+", SubscribeOptions(qos=1, noLocal=True))]
        # ours: the profiles that say when a campaign cell is complete (campaigns.py on_profile)
        subs += [(f"{base}/profile/{t}/+/+", SubscribeOptions(qos=1, noLocal=True)) for t in campaigns.PROFILE_TYPES]
        _, self._sub_mid = c.subscribe(subs)
        if self.orch is not None:  # after the subscriptions: a node's answer to it finds us listening
            c.publish(presence_topic(self.cfg.realm), self.orch.presence.online(), qos=1, retain=True)

    def _on_connect_fail(self, c: mqtt.Client, u: Any) -> None:
        if not self._warned_fail:
            mqlog.warning("cannot reach broker %s:%d; retrying", self.cfg.mqtt, self.cfg.mqtt_port)
            self._warned_fail = True

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
            mqlog.warning("disconnected from broker (%s); reconnecting", rc)

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            if self.orch is not None and not self.stopping.is_set():
                self.orch.handle(msg.topic, bytes(msg.payload))

    def _publish(self, topic: str, payload: bytes) -> None:
        if self.client is not None:
            self.client.publish(topic, payload, qos=1)

    # -- REST ---------------------------------------------------------------------------
    def answer(self, path: str, query: str) -> tuple[int, dict[str, Any]]:
        if path.rstrip("/") == "/api/status":
            return 200, {"mqtt_connected": self.connected.is_set(), "subscribed": self.subscribed.is_set(),
                         "realm": self.cfg.realm, "broker": f"{self.cfg.mqtt}:{self.cfg.mqtt_port}",
                         "ka_interval_sec": self.ka_interval, "store": self.db_path}
        with self.lock:
            if self.orch is None or self.store is None or self.stopping.is_set():
                return 503, {"error": "orchestrator is stopping"}
            got = views.plan(self.orch, path, query)
        if isinstance(got, campaigns.CampaignRead):  # campaign states: a join over their cells, outside the lock
            with self.store.reader() as r:
                return got.run(r.conn)
        if not isinstance(got, views.ModuleQuery):
            return got
        # module lists can be long (100k queued): read them without holding up decisions
        with self.store.reader() as r:
            return views.run_module_query(r, got)


def _make_handler(service: Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "silverline-orchestrator"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = urlsplit(self.path)
            t0 = time.perf_counter()
            html = dashboard.page(parts.path)  # the fleet dashboard's page (orchestrator/dashboard.py)
            if html is not None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(html)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(html)
                return
            try:
                code, body = service.answer(parts.path, parts.query)
            except Exception as e:  # report, keep serving
                log.exception("REST %s failed", self.path)
                code, body = 500, {"error": f"internal error: {type(e).__name__}: {e}"}
            data = orjson.dumps(body, option=orjson.OPT_INDENT_2) if "pretty" in parts.query else orjson.dumps(body)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            log.debug("GET %s -> %d (%.1f ms)", self.path, code, (time.perf_counter() - t0) * 1e3)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests are logged at DEBUG above, not on stderr

    return Handler

