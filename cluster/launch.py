"""`runall`: create a module on every device's runtime through the orchestrator.

Publishes one `create` request per (device, file) on `{realm}/proc/control` (PROTOCOL.md
section 1). `parent` is the runtime's name (a template, default `{name}`), which the
orchestrator resolves by uuid, name or suffix. Afterwards it listens on `{realm}/proc/log`
for a while and reports the requests the orchestrator refused (matched by module uuid).
"""
from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from common.config import Config
from common.wire import Topics, encode, envelope, new_uuid


class LaunchError(Exception):
    """The broker could not be reached or did not take the requests."""


@dataclass
class Request:
    device: str
    runtime: str
    file: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)  # the create message's `args` (as `manage.py run`)
    channels: list[dict[str, str]] = field(default_factory=list)
    uuid: str = field(default_factory=new_uuid)
    error: str | None = None

    def create_message(self) -> dict[str, Any]:
        return envelope("create", {
            "type": "module", "uuid": self.uuid, "name": self.name, "parent": self.runtime,
            "file": self.file, "apis": [], "args": self.args, "channels": self.channels,
        })


def _client(cfg: Config) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sl-runall-{new_uuid()[:8]}")
    if cfg.mqtt_username:
        c.username_pw_set(cfg.mqtt_username, cfg.password())
    if cfg.use_ssl:
        c.tls_set(ca_certs=cfg.ssl_ca, certfile=cfg.ssl_cert, keyfile=cfg.ssl_key, cert_reqs=ssl.CERT_REQUIRED)
        c.tls_insecure_set(cfg.ssl_insecure)
    return c


def publish_creates(cfg: Config, requests: list[Request], *, listen_s: float = 2.0, timeout_s: float = 10.0) -> list[Request]:
    """Publish the create requests (QoS 1, acknowledged), then collect refusals from proc/log."""
    topics = Topics(cfg.realm)
    client = _client(cfg)
    connected = threading.Event()
    subscribed = threading.Event()
    errors: list[bytes] = []
    lock = threading.Lock()

    def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if not rc.is_failure:
            connected.set()
            c.subscribe(topics.log, qos=1)

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        with lock:
            errors.append(bytes(msg.payload))

    client.on_connect = on_connect
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = on_message
    where = f"{cfg.mqtt}:{cfg.mqtt_port}"
    try:
        client.connect(cfg.mqtt, cfg.mqtt_port)
    except OSError as e:
        raise LaunchError(f"cannot reach the MQTT broker at {where}: {e.strerror or e}") from e
    client.loop_start()
    try:
        if not connected.wait(timeout_s):
            raise LaunchError(f"the MQTT broker at {where} did not accept the connection within {timeout_s:g}s")
        subscribed.wait(timeout_s)
        infos = [client.publish(topics.control(), encode(r.create_message()), qos=1) for r in requests]
        deadline = time.monotonic() + timeout_s
        for r, info in zip(requests, infos):
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                r.error = f"the broker at {where} did not acknowledge the request"
        time.sleep(listen_s)
    finally:
        client.loop_stop()
        client.disconnect()
    with lock:
        logs = [e.decode("utf-8", "replace") for e in errors]
    for r in requests:
        for text in logs:
            if r.uuid in text and r.error is None:
                r.error = f"refused by the orchestrator: {text[:300]}"
    return requests
