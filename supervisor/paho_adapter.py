"""Every use of paho-mqtt's private attributes, in one place, checked when the link starts.

The link's fast paths (mqtt_link.py) need four internals of paho's `Client`: `_packet_queue` and
`_out_packet` (hand a buffer of ready QoS 0 PUBLISH packets to paho's writer, and see how far it is
behind), `_sock_recv` and `_in_packet` (paho reads the packets the link did not decode from what the
link feeds it; without them paho reads its socket itself: `read_burst`). Two more keep paho's own
API honest: `_host` (did `connect()` get as far as the address) and `_sock_close`; and
`_out_messages` tells a clean stop which QoS 1/2 publishes the broker has not acknowledged yet
(without it the stop waits only for the writes). When one is missing (another paho than those
tested), the link falls back to paho's public API for that direction and says so once in the log.
TESTED_PAHO lists the minor versions tested with the fast paths on; pyproject.toml names exactly these.
"""
from __future__ import annotations

import logging
import socket
import ssl
from typing import Any, Callable

import paho.mqtt
import paho.mqtt.client as mqtt

log = logging.getLogger("mq")

TESTED_PAHO = ("2.0", "2.1", "2.2")  # pyproject.toml: paho-mqtt>=2.0,<2.3
OUT_NEEDS = ("_packet_queue", "_out_packet")
IN_NEEDS = ("_sock_recv", "_in_packet")

_said: set[str] = set()


class PahoAdapter:
    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.version = str(getattr(paho.mqtt, "__version__", "?"))
        self.missing_out = [a for a in OUT_NEEDS if not hasattr(client, a)]
        self.missing_in = [a for a in IN_NEEDS if not hasattr(client, a)]
        self.fast_out = not self.missing_out
        self.fast_in = not self.missing_in
        self._info = mqtt.MQTTMessageInfo(0)
        self._say_once()

    def _say_once(self) -> None:
        what = (f"QoS 0 publish {'fast path' if self.fast_out else 'through paho (lacks ' + ', '.join(self.missing_out) + ')'}, "
                f"inbound {'fast parser' if self.fast_in else 'through paho (lacks ' + ', '.join(self.missing_in) + ')'}")
        if what in _said:
            return
        _said.add(what)
        level = logging.INFO if self.fast_out and self.fast_in else logging.WARNING
        untested = "" if self.version.rsplit(".", 1)[0] in TESTED_PAHO else f"; untested paho version (tested: {', '.join(TESTED_PAHO)})"
        log.log(level, "paho-mqtt %s: %s%s", self.version, what, untested)

    def queue_publishes(self, packets: bytes, sock: Any = None) -> None:
        """Hand ready QoS 0 PUBLISH packets to paho's writer as one write (fast_out only). With paho's
        queue empty and `sock` a plain TCP socket they are written here at once (paho's writer costs
        ~3 us a call in Python, on every message of a quiet node); what the kernel does not take now
        goes to paho's queue, behind nothing, so the order on the wire stays. TLS goes through paho."""
        if sock is not None and type(sock) is socket.socket and not self.client._out_packet:
            try:
                n = sock.send(packets)
            except OSError:  # full (EAGAIN) or broken: paho's writer retries, or handles the lost connection
                n = 0
            if n >= len(packets):
                return
            packets = packets[n:]
        self.client._packet_queue(mqtt.PUBLISH, packets, 0, 0, self._info)

    def out_queue_len(self) -> int:
        """Packets waiting in paho's output queue (0 without fast_out: nothing is known)."""
        return len(self.client._out_packet) if self.fast_out else 0

    def read_from(self, recv: Callable[[int], bytes]) -> None:
        """paho reads its socket through `recv` from now on (fast_in only)."""
        self.client._sock_recv = recv  # type: ignore[method-assign, assignment]

    def read_burst(self, sock_of: Callable[[], Any]) -> None:
        """The inbound path without fast_in: paho reads one packet per loop_read() when nothing is in
        flight, so read until the kernel holds nothing more and one wake-up handles a burst (a peek
        is a cheap syscall; TLS uses pending()). `sock_of()` is the socket now (None once closed)."""
        for _ in range(256):
            if sock_of() is None or self.client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                return
            sock = sock_of()
            if sock is None:
                return
            if isinstance(sock, ssl.SSLSocket):
                if not sock.pending():
                    return
                continue
            try:
                if not sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    return
            except OSError:  # BlockingIOError, InterruptedError or a dead socket: nothing more now
                return

    def has_address(self) -> bool:
        """`connect()` got as far as remembering the broker's address (then `reconnect()` works)."""
        return bool(getattr(self.client, "_host", ""))

    def set_address(self, host: str, port: int) -> None:
        """The broker the next `reconnect()` goes to (failover). paho's `host`/`port` setters refuse
        while its state is "connection lost", which is exactly when we switch."""
        self.client._host, self.client._port = host, port

    def set_protocol(self, v5: bool) -> None:
        """MQTT 5 or 3.1.1 for the next connection (per broker; paho fixes it at construction).
        3.1.1 needs `_clean_session`, which paho sets only for it: a clean session, as MQTT 5's clean start."""
        self.client._protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.client._clean_session = True

    def unacked(self) -> int:
        """Our QoS 1/2 publishes the broker has not acknowledged (paho keeps them until PUBACK/PUBCOMP)."""
        return len(getattr(self.client, "_out_messages", ()))

    def close_socket(self) -> None:
        """Close paho's socket without the DISCONNECT handshake (the broker is gone or slow)."""
        close = getattr(self.client, "_sock_close", None)
        if close is not None:
            close()
