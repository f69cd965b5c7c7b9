"""The supervisor's MQTT connection: paho-mqtt 2.x driven by the supervisor's own selector
(docs/supervisor.md; the measurements behind each choice: docs/performance.md).

- paho's external-loop API, not `loop_start()`: workers are forked at any time, and forking a process
  that has threads copies their locks in whatever state (paho's, logging's): children deadlock.
- MQTT 5 with `no_local` (loopback to local channels is the supervisor's own) and clean start: after
  a reconnect the link re-subscribes everything and calls `on_connect` (the node registers again).
  A broker named `mqtt311://HOST:PORT` is spoken to in MQTT 3.1.1, `no_local` emulated (echo.py).
- A list of brokers (config `mqtt`, common/broker.py): a lost or refused one is followed at once by
  the next; after a round of failures reconnects back off from 0.5 s to 2 s (RECONNECT_MAX_DELAY).
- QoS 0 fast path out: paho's `publish()` costs ~15 us and one `send()` per packet; QoS 0 PUBLISH
  packets are encoded here into one buffer per loop iteration and written in one send(). Anything
  else goes through paho after the buffer is flushed (order kept). `backlog()`: backpressure.
- Inbound fast path: one `recv()` for what the kernel holds, QoS 0 PUBLISH straight to `on_message`,
  every other packet fed to paho in order. Formats: mqtt_codec.py; paho internals: paho_adapter.py.
"""
from __future__ import annotations

import logging
import select
import selectors
import socket
import ssl
import time
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from common.broker import broker_list, broker_protocols
from common.config import Config
from common.outage import OutageLog
from supervisor import mqtt_codec
from supervisor.echo import EchoFilter
from supervisor.paho_adapter import PahoAdapter
from supervisor.socket_close import send_and_wait_for_close

log = logging.getLogger("mq")

OnMessage = Callable[[str, bytes], None]

FAST_BATCH = 256 * 1024  # hand the QoS 0 buffer to paho when it reaches this size
# Reconnect attempts back off from 0.5 s to this. Regression (chaos broker_loss): a 30 s cap saw a broker back
# after 9 s only 6.5 s later (the promise is 5 s); an attempt on a closed port costs one SYN.
RECONNECT_MAX_DELAY = 2.0
BACKLOG_PACKETS = 16  # packets waiting in paho's output queue before the supervisor holds back
ACK_WAIT = 2.0  # clean stop: seconds to wait for the broker's acknowledgements of our last publishes
CLOSE_WAIT = 1.0  # clean stop: seconds to wait for the broker to close after our DISCONNECT


class MqttLink:
    """One MQTT 5 client in the caller's selector. Call `connect()` once, then the loop calls
    `handle(events)` for the socket and `tick()` at least once a second."""

    def __init__(self, cfg: Config, *, client_id: str, selector: selectors.BaseSelector, on_message: OnMessage,
                 on_connect: Callable[[], None], will: tuple[str, bytes, int] | None = None) -> None:
        self.cfg = cfg
        self.selector = selector
        self.on_message = on_message
        self.no_retained: set[str] = set()  # topics subscribed without their retained message (issue #25)
        self.on_connect_cb = on_connect
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                  reconnect_on_failure=False)
        self.client.suppress_exceptions = False
        if log.isEnabledFor(5):
            self.client.enable_logger(logging.getLogger("mq.paho"))
        if will is not None:
            self.client.will_set(will[0], will[1], qos=will[2])
        if cfg.mqtt_username:
            self.client.username_pw_set(cfg.mqtt_username, cfg.password())
        if cfg.use_ssl:
            self.client.tls_set(ca_certs=cfg.ssl_ca, certfile=cfg.ssl_cert, keyfile=cfg.ssl_key)
            if cfg.ssl_insecure:
                self.client.tls_insecure_set(True)
        c = self.client
        c.on_connect, c.on_disconnect, c.on_message = self._on_connect, self._on_disconnect, self._on_message
        c.on_socket_open, c.on_socket_close = self._on_socket_open, self._on_socket_close
        c.on_socket_register_write, c.on_socket_unregister_write = self._on_register_write, self._on_unregister_write
        self.brokers = broker_list(cfg.mqtt, cfg.mqtt_port)  # failover order (common/broker.py)
        self.v5s = [v == 5 for v in broker_protocols(cfg.mqtt)]  # else MQTT 3.1.1: no_local emulated (echo.py)
        self._v5, self._echo = True, EchoFilter()
        self._at, self._tried = 0, 0  # the broker in use (or tried now); tried since the last connection
        self.subscriptions: dict[str, int] = {}  # filter -> qos, restored after every reconnect
        self.connected = False
        self.connections = 0  # successful CONNACKs so far
        self._sock: Any = None
        self._want_write, self._paho_write = False, False  # registered for EVENT_WRITE; paho has something to write
        self._next_attempt = 0.0
        self._delay = 0.5
        self._outage = OutageLog(log)
        self._started = False
        self._last_misc = 0.0
        self.paho = PahoAdapter(self.client)
        self._fast_ok = self.paho.fast_out
        self._fast_buf = bytearray()
        self._topic_heads: dict[str, bytes] = {}
        self.dropped_qos0 = 0
        self._inbuf = bytearray()  # received, not parsed yet
        self._feed = bytearray()  # one complete packet for paho to read
        self._eof = False
        self._fast_in = self.paho.fast_in
        if self._fast_in:
            self.paho.read_from(self._paho_recv)

    # ------------------------------------------------------------------ connection

    def fileno(self) -> int | None:
        """The socket's descriptor while one exists (a forked worker closes it)."""
        return self._sock.fileno() if self._sock is not None else None

    @property
    def address(self) -> str:
        return "%s:%d" % self.brokers[self._at]

    def connect(self) -> None:
        """First connection attempt; failures are retried from `tick()` with backoff."""
        self._started = True
        self._reconnect()

    def _schedule_retry(self, why: str) -> None:
        """The broker in use failed (or refused, or went away): the next one of the list at once;
        once every one was tried, back off (0.5 s doubling to RECONNECT_MAX_DELAY) and start over."""
        self._tried += 1
        if len(self.brokers) > 1:
            self._at = (self._at + 1) % len(self.brokers)
            if self._tried < len(self.brokers):
                log.info("%s; trying the next broker, %s", why, self.address)
                self._next_attempt = time.monotonic()  # tick() connects at the loop's next turn
                return
        self._tried = 0  # a round of failures: back off
        self._outage.failed(why, f"retrying every {RECONNECT_MAX_DELAY:g} s at most")  # not one ERR line per retry
        log.debug("%s; retrying in %.1fs", why, self._delay)
        self._next_attempt = time.monotonic() + self._delay
        self._delay = min(RECONNECT_MAX_DELAY, self._delay * 2)

    def _reconnect(self) -> None:
        self._next_attempt, (host, port) = 0.0, self.brokers[self._at]
        if self._v5 != self.v5s[self._at]:
            self._v5 = self.v5s[self._at]
            self._topic_heads.clear()
            self.paho.set_protocol(self._v5)
        try:
            if self.paho.has_address():
                self.paho.set_address(host, port)
                self.client.reconnect()
            else:
                self.client.connect(host, port, keepalive=30, clean_start=True if self._v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY)
        except (OSError, ssl.SSLError, RuntimeError) as e:
            self._schedule_retry(f"cannot connect to MQTT broker {self.address}: {e}")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            self._schedule_retry(f"MQTT broker {self.address} refused the connection: {rc}")
            return
        self.connected = True
        self.connections += 1
        self._delay, self._tried = 0.5, 0
        log.info("connected to MQTT broker %s%s%s", self.address, " (reconnected)" if self.connections > 1 else "",
                 self._outage.recovered())
        for topic, qos in self.subscriptions.items():
            self._subscribe(topic, qos)
        self.on_connect_cb()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        was = self.connected
        self.connected = False
        if self._started and was:
            log.warning("lost MQTT broker %s (%s)", self.address, rc)
        if self._started and not self._next_attempt:
            self._schedule_retry("disconnected from MQTT broker" if was else f"MQTT connection to {self.address} failed")

    def close(self) -> None:
        """Clean stop (no last will): write what is queued, wait (at most ACK_WAIT) for the broker's
        acknowledgements of our QoS 1/2 publishes, send DISCONNECT, then wait (at most CLOSE_WAIT) for
        the broker to close the connection, reading what it still sends, and only then close our end.

        Regression (tests/fleet/test_heal.py): paho closed its socket right after DISCONNECT, PUBACKs
        unread: a reset, mosquitto dropped the DISCONNECT and published the last will.
        """
        self._started = False
        sock = self._sock
        if self.connected and sock is not None:
            self._flush_fast()
            deadline = time.monotonic() + ACK_WAIT
            while (self._sock is not None and self.connected and (self.paho.unacked() or self.client.want_write())
                   and time.monotonic() < deadline):
                self._pump(min(0.05, max(0.0, deadline - time.monotonic())))
            if self.paho.unacked():
                log.warning("%d QoS 1/2 messages not acknowledged by the broker within %.0fs", self.paho.unacked(), ACK_WAIT)
            if self._sock is not None and not self.client.want_write():
                self._disconnect_and_wait(self._sock)
        if self._sock is not None:
            try:
                self.paho.close_socket()
            except Exception:
                pass
        self.connected = False

    def _pump(self, timeout: float) -> None:
        """One bounded wait on the socket: read what came (acknowledgements), write what is queued."""
        sock = self._sock
        if sock is None:
            return
        want_write = self.client.want_write()
        try:
            r, w, _ = select.select([sock], [sock] if want_write else [], [], timeout)
        except (OSError, ValueError):
            return
        if r:
            self._read()
        if w and self._sock is not None:
            self.client.loop_write()

    def _disconnect_and_wait(self, sock: Any) -> None:
        """DISCONNECT written by us, not paho: our socket stays open until the broker has closed its side."""
        if not send_and_wait_for_close(sock, mqtt_codec.DISCONNECT_NORMAL, CLOSE_WAIT):
            log.debug("the broker did not close the connection within %.1fs after DISCONNECT", CLOSE_WAIT)

    # ------------------------------------------------------------------ selector plumbing

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._sock = sock
        self._want_write = False
        self._paho_write = False
        self._inbuf = bytearray()
        self._feed = bytearray()
        self._eof = False
        try:  # we batch our writes ourselves: Nagle would only delay the last packet of a burst
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        self.selector.register(sock, selectors.EVENT_READ, self)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        self._sock = None

    # paho asks for write readiness at every queued packet; the loop writes at each iteration's end anyway
    # (`flush`): EVENT_WRITE only when a write came back short (two epoll_ctl calls per burst saved).
    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._paho_write = True

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._paho_write = False
        if self._want_write and self._sock is not None:
            self._want_write = False
            self.selector.modify(sock, selectors.EVENT_READ, self)

    def handle(self, events: int) -> None:
        """The selector reported the socket ready."""
        if events & selectors.EVENT_READ:
            self._read()
        if events & selectors.EVENT_WRITE and self._sock is not None:
            self.client.loop_write()

    def _paho_recv(self, bufsize: int) -> bytes:
        """paho's socket read, served from the packet the link fed it."""
        if self._feed:
            chunk = bytes(self._feed[:bufsize])
            del self._feed[:bufsize]
            return chunk
        if self._eof:
            return b""  # paho: connection lost
        raise BlockingIOError

    def _to_paho(self, packet: bytes | bytearray) -> None:
        self._feed += packet
        while self._feed or self._eof:
            if self._sock is None or self.client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                self._feed.clear()
                return
            if self._eof and not self._feed:
                self.client.loop_read()  # reads b"": paho handles the lost connection
                return

    def _read(self) -> None:
        if not self._fast_in:
            self._read_paho()
            return
        sock = self._sock
        while sock is not None:
            try:
                chunk = sock.recv(1 << 18)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError:
                self._eof = True
                break
            if not chunk:
                self._eof = True
                break
            self._inbuf += chunk
            if isinstance(sock, ssl.SSLSocket):
                if not sock.pending():
                    break
            elif len(chunk) < 1 << 18:
                break
        self._parse()
        if self._eof and self._sock is not None:
            self._to_paho(b"")

    def _parse(self) -> None:
        used = mqtt_codec.split(self._inbuf, self.on_message if self._v5 else self._heard, self._to_paho,
                                lambda: self._sock is None, self._v5)
        del self._inbuf[:used]

    def _read_paho(self) -> None:
        self.paho.read_burst(lambda: self._sock)

    def flush(self) -> None:
        """Write what is queued now (called once per loop iteration: batches a burst of publishes)."""
        self._flush_fast()
        if self._paho_write and self._sock is not None:
            self.client.loop_write()
            if self._paho_write and self._sock is not None and not self._want_write:
                self._want_write = True  # the kernel buffer is full: wait for EVENT_WRITE
                self.selector.modify(self._sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    def _flush_fast(self) -> None:
        if not self._fast_buf:
            return
        if self._sock is not None and self.connected:
            self.paho.queue_publishes(bytes(self._fast_buf), self._sock)
        self._fast_buf = bytearray()

    def backlog(self) -> bool:
        """True while the socket is behind: the caller should stop producing for a moment."""
        return self.paho.out_queue_len() >= BACKLOG_PACKETS

    def tick(self) -> None:
        now = time.monotonic()
        if self._next_attempt and now >= self._next_attempt and self._started:
            self._reconnect()
        if self._sock is not None and now - self._last_misc >= 1.0:
            self._last_misc = now
            self.client.loop_misc()
            self._echo.expire()

    def next_deadline(self) -> float | None:
        return self._next_attempt or None

    # ------------------------------------------------------------------ pub/sub

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        (self.on_message if self._v5 else self._heard)(msg.topic, bytes(msg.payload))

    def _heard(self, topic: str, payload: bytes) -> None:  # MQTT 3.1.1: our own publishes come back
        if not self._echo.is_echo(topic, payload):
            self.on_message(topic, payload)

    def _subscribe(self, topic: str, qos: int) -> None:
        if not self._v5:  # 3.1.1: no subscription options (echo.py)
            self.client.subscribe(topic, qos)
            return
        # retain handling 2 on `no_retained` topics (control, registration): a retained create is never executed
        self.client.subscribe(topic, options=SubscribeOptions(qos=qos, noLocal=True, retainHandling=2 if topic in self.no_retained else 0))

    def subscribe(self, topic: str, qos: int = 0, retained: bool = True) -> None:
        """`retained=False`: retain handling 2, the broker never hands over a retained message on `topic`."""
        self._flush_fast()
        self.subscriptions[topic] = qos
        if not retained:
            self.no_retained.add(topic)
        if self.connected:
            self._subscribe(topic, qos)

    def unsubscribe(self, topic: str) -> None:
        self._flush_fast()
        if self.subscriptions.pop(topic, None) is not None and self.connected:
            self.client.unsubscribe(topic)

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Queue a publish (written by `flush()`/the selector). QoS 0 while disconnected is dropped
        with a debug line; QoS 1/2 are kept by paho and sent after the reconnect."""
        if not self._v5:
            self._echo.sent(topic, payload)
        if qos == 0 and self._fast_ok:
            if not self.connected:
                self.dropped_qos0 += 1
                log.debug("publish on %s dropped: not connected", topic)
                return
            head = self._topic_heads.get(topic)
            if head is None:
                head = mqtt_codec.publish_head(topic, self._v5)
                if len(self._topic_heads) > 10000:
                    self._topic_heads.clear()
                self._topic_heads[topic] = head
            mqtt_codec.append_publish(self._fast_buf, head, payload)
            if len(self._fast_buf) >= FAST_BATCH:
                self._flush_fast()
            return
        self._flush_fast()
        info = self.client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and qos == 0:
            log.debug("publish on %s dropped: not connected", topic)
