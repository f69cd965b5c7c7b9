"""A synchronous MQTT probe for tests: publish, and wait for matching messages."""
from __future__ import annotations

import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool

    def json(self) -> Any:
        return orjson.loads(self.payload)


class MqttProbe:
    """Connects to the test broker, records every message on its subscriptions."""

    def __init__(self, port: int, host: str = "127.0.0.1", client_id: str = "") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self._msgs: list[Received] = []
        self._cv = threading.Condition()
        self._subacks: "queue.Queue[int]" = queue.Queue()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda c, u, mid, rc, props: self._subacks.put(mid)
        self.client.connect(host, port)
        sock = self.client.socket()
        if isinstance(sock, socket.socket):  # small test messages must not wait for Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cv:
            self._msgs.append(Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))
            self._cv.notify_all()

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0) -> None:
        _, mid = self.client.subscribe(topic, qos)
        deadline = time.monotonic() + timeout
        while True:
            got = self._subacks.get(timeout=max(0.0, deadline - time.monotonic()))
            if got == mid:
                return

    def publish(self, topic: str, payload: Any, qos: int = 1) -> None:
        if not isinstance(payload, (bytes, bytearray, str)):
            payload = orjson.dumps(payload)
        self.client.publish(topic, payload, qos=qos).wait_for_publish(5)

    def messages(self, topic_filter: str | None = None) -> list[Received]:
        with self._cv:
            return [m for m in self._msgs if topic_filter is None or mqtt.topic_matches_sub(topic_filter, m.topic)]

    def clear(self) -> None:
        with self._cv:
            self._msgs.clear()

    def wait_for(self, topic_filter: str, pred: Callable[[Received], bool] = lambda m: True, timeout: float = 10.0, count: int = 1) -> list[Received]:
        """Wait until `count` messages match; return them (raise TimeoutError listing what came)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                hits = [m for m in self._msgs if mqtt.topic_matches_sub(topic_filter, m.topic) and pred(m)]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "\n".join(f"  {m.topic}: {m.payload[:200]!r}" for m in self._msgs[-20:])
                    raise TimeoutError(f"{len(hits)}/{count} messages on {topic_filter} after {timeout}s; last seen:\n{seen}")
                self._cv.wait(left)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
