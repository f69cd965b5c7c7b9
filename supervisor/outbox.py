"""Where the supervisor's parts publish: the MQTT link once `run()` has made it, and the node's
error reports (our log plus `{realm}/proc/log`, so the sender of a bad request sees what was wrong)."""
from __future__ import annotations

import logging
from typing import Any, Callable

from common.wire import Topics, encode, envelope, one_line, quote
from supervisor.mqtt_link import MqttLink

log = logging.getLogger("mgr")


class Outbox:
    def __init__(self, topics: Topics, *, node_name: str, manager_uuid: str) -> None:
        self.topics = topics
        self.node_name = node_name
        self.manager_uuid = manager_uuid
        self.link: MqttLink | None = None  # None until the supervisor has forked its workers and connects
        self.before: Callable[[], None] | None = None  # called before each publish (delivery.Delivery.flush)

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        if self.before is not None:
            self.before()  # the result spool's pending results go first (delivery.py): a profile before its exited
        if self.link is not None:
            self.link.publish(topic, payload, qos)

    def subscribe(self, topic: str, qos: int) -> None:
        if self.link is not None:
            self.link.subscribe(topic, qos)

    def unsubscribe(self, topic: str) -> None:
        if self.link is not None:
            self.link.unsubscribe(topic)

    def error(self, text: str, *, payload: bytes | None = None, logger: logging.Logger = log) -> None:
        """An error the sender should see: our log and `{realm}/proc/log`."""
        text = one_line(text)
        logger.error("%s", text)
        data: dict[str, Any] = {"error": text, "node": self.node_name, "manager": self.manager_uuid}
        if payload is not None:
            data["payload"] = quote(payload)  # at most 200 bytes of what was refused
        self.publish(self.topics.log, encode(envelope("error", data, type="resp")), 1)
