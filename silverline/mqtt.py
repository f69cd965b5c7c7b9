"""One MQTT connection for a client: publish with acknowledgement, subscribe with a handler. A list
of brokers (config `mqtt`): the first one that accepts the TCP connection.

paho's network thread calls the handlers; they must be quick (the client's handlers only
append to queues and set events).
"""
from __future__ import annotations

import ssl
import threading
from typing import Any, Callable, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from common.broker import broker_list
from common.config import Config, ConfigError
from common.wire import encode
from silverline.errors import ClientError

Handler = Callable[[str, bytes], None]


C = TypeVar("C", bound="Connection")  # open() and `with` give back the subclass (cli/_api.py Session)

class Connection:
    """`with Connection(cfg) as c:` connects (ClientError naming the broker when it cannot)."""

    def __init__(self, cfg: Config, timeout: float = 10.0) -> None:
        self.cfg = cfg
        self.timeout = timeout
        self.where = f"{cfg.mqtt}:{cfg.mqtt_port}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._connected = threading.Event()
        self._refused: list[str] = []
        self._acked: set[int] = set()  # SUBACKed message ids (a SUBACK may come before subscribe() returns)
        self._handlers: list[tuple[str, Handler]] = []
        self._lock = threading.Lock()
        self._ack = threading.Condition(self._lock)
        self._open = False
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # -- paho callbacks (network thread) ------------------------------------------------
    def _on_connect(self, cl: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            self._refused.append(str(rc))
        self._connected.set()

    def _on_subscribe(self, cl: Any, u: Any, mid: int, rcs: Any, props: Any = None) -> None:
        with self._ack:
            self._acked.add(mid)
            self._ack.notify_all()

    def _on_message(self, cl: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            handlers = [h for f, h in self._handlers if mqtt.topic_matches_sub(f, msg.topic)]
        for h in handlers:
            h(msg.topic, bytes(msg.payload))

    # -- lifecycle ----------------------------------------------------------------------
    def open(self: C) -> C:
        if self._open:
            return self
        c, cfg = self.client, self.cfg
        if cfg.mqtt_username:
            try:
                c.username_pw_set(cfg.mqtt_username, cfg.password())
            except ConfigError as e:
                raise ClientError(f"bad config: {e}") from None
        if cfg.use_ssl:
            c.tls_set(ca_certs=cfg.ssl_ca, certfile=cfg.ssl_cert, keyfile=cfg.ssl_key, cert_reqs=ssl.CERT_REQUIRED)
            c.tls_insecure_set(cfg.ssl_insecure)
        try:
            brokers = broker_list(cfg.mqtt, cfg.mqtt_port)
        except ValueError as e:
            raise ClientError(f"bad config: key `mqtt`: {e}") from None
        failed = []
        for host, port in brokers:  # a list: the first that answers (common/broker.py)
            self.where = f"{host}:{port}"
            try:
                c.connect(host, port, keepalive=30)
                break
            except (OSError, ValueError) as e:
                failed.append(f"{self.where}: {getattr(e, 'strerror', None) or e}")
        else:
            raise ClientError(f"cannot reach the MQTT broker at {'; '.join(failed)} (config keys `mqtt`/`mqtt_port`)")
        c.loop_start()
        self._open = True
        try:
            if not self._connected.wait(self.timeout):
                raise ClientError(f"MQTT broker at {self.where} did not answer the connect within {self.timeout:g} s")
            if self._refused:
                raise ClientError(f"MQTT broker at {self.where} refused the connection: {self._refused[0]}")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Idempotent."""
        if self._open:
            self._open = False
            self.client.disconnect()
            self.client.loop_stop()

    def __enter__(self: C) -> C:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- traffic ------------------------------------------------------------------------
    def subscribe(self, topics: list[str], handler: Handler, qos: int = 1) -> None:
        """Call `handler(topic, payload)` for messages on `topics` (MQTT filters) from now on; returns
        once the broker confirmed. no-local: this connection's own publishes do not come back."""
        if not topics:
            return
        with self._lock:
            self._handlers.extend((t, handler) for t in topics)
        rc, mid = self.client.subscribe([(t, SubscribeOptions(qos=qos, noLocal=True)) for t in topics])
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise ClientError(f"cannot subscribe at the MQTT broker at {self.where}: {mqtt.error_string(rc)}")
        with self._ack:
            if not self._ack.wait_for(lambda: mid in self._acked, self.timeout):
                raise ClientError(f"MQTT broker at {self.where} did not confirm a subscription within {self.timeout:g} s")
            self._acked.discard(mid)

    def publish(self, messages: list[tuple[str, bytes | dict[str, Any]]], qos: int = 1) -> None:
        """Publish (topic, payload or envelope) pairs and wait until the broker has them all."""
        infos = [self.client.publish(topic, p if isinstance(p, bytes) else encode(p), qos=qos) for topic, p in messages]
        for info in infos:
            info.wait_for_publish(self.timeout)
            if not info.is_published():
                raise ClientError(f"MQTT broker at {self.where} did not acknowledge a publish within {self.timeout:g} s")
