"""A broker with the password and ACL files of `manage.py acl`, and an MQTT 5 client that reports what
the broker answered (CONNACK and PUBACK reason codes), for the least-privilege tests and chaos.

    realm = AclRealm(tmpdir, nodes={"na": ["na"]})   # identity files + manage.py acl
    with realm.broker() as broker: ...                # mosquitto using those files
    c = AuthClient(broker.port, "na", realm.password("na"))
    c.publish_rc(topic, payload) -> int               # < 0x80 accepted, 0x87 = not authorized
"""
from __future__ import annotations

import json
import os
import threading
import uuid as _uuid
from typing import Any, TypedDict

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from testbed.broker import Mosquitto

NOT_AUTHORIZED = 0x87


class Identity(TypedDict):
    """A node's state file (supervisor/identity.py): its manager uuid and a uuid per runtime name."""
    manager: str
    runtimes: dict[str, str]


class AclRealm:
    """Identity files of some nodes (name -> full runtime names) and the files `manage.py acl` writes."""

    def __init__(self, tmpdir: str, nodes: dict[str, list[str]], realm: str = "realm", channels: list[str] | None = None) -> None:
        from cli import acl

        self.dir = tmpdir
        self.state = os.path.join(tmpdir, "state")
        self.out = os.path.join(tmpdir, "acl")
        os.makedirs(self.state, exist_ok=True)
        self.identities: dict[str, Identity] = {}
        paths = []
        for name, rts in nodes.items():
            ident: Identity = {"manager": str(_uuid.uuid4()), "runtimes": {rt: str(_uuid.uuid4()) for rt in rts}}
            path = os.path.join(self.state, f"{name}.json")
            with open(path, "w") as f:
                json.dump(ident, f)
            self.identities[name] = ident
            paths.append(path)
        args = ["-o", self.out, "--realm", realm, "--no-tls", "--broker", "127.0.0.1"] + [
            a for c in channels or [] for a in ("--channel", c)] + paths
        rc = acl.main(args)
        if rc != 0:
            raise RuntimeError(f"manage.py acl {' '.join(args)} failed ({rc})")

    def password(self, user: str) -> str:
        with open(os.path.join(self.out, "passwords", user)) as f:
            return f.read().strip()

    def password_file(self, user: str) -> str:
        return os.path.join(self.out, "passwords", user)

    def runtime(self, node: str) -> str:
        return next(iter(self.identities[node]["runtimes"].values()))

    def broker(self) -> Mosquitto:
        with open(os.path.join(self.out, "mosquitto-auth.conf")) as f:
            auth = f.read()
        return _AuthMosquitto(auth)

    def config(self, user: str, port: int, path: str, **more: Any) -> str:
        """A config.json for account `user` (mqtt_username + pwd) written to `path`."""
        with open(path, "w") as f:
            json.dump({"mqtt": "127.0.0.1", "mqtt_port": port, "mqtt_username": user, "pwd": self.password_file(user),
                       **more}, f)
        return path


class _AuthMosquitto(Mosquitto):
    """Mosquitto with `allow_anonymous false` (the helper's default `true` line dropped) plus the auth files."""

    def __init__(self, auth_conf: str) -> None:
        super().__init__(extra_conf="")
        with open(self.conf) as f:
            base = [ln for ln in f.read().splitlines() if not ln.startswith("allow_anonymous")]
        with open(self.conf, "w") as f:
            f.write("\n".join(base) + "\n" + auth_conf + "\n")


class AuthClient:
    """An MQTT 5 client with credentials (or none): `connect_rc`, `publish_rc`, `subscribe_rc`, messages."""

    def __init__(self, port: int, user: str | None = None, password: str | None = None, client_id: str | None = None) -> None:
        self.port = port
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"acl-{user or 'anon'}-{_uuid.uuid4().hex[:6]}",
                             protocol=mqtt.MQTTv5)
        if user is not None:
            self.c.username_pw_set(user, password)
        self._connack = threading.Event()
        self.connect_code: int | None = None
        self._acks: dict[int, int] = {}
        self._ack_ev = threading.Condition()
        self.messages: list[tuple[str, bytes]] = []
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload)))

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self.connect_code = int(rc.value if hasattr(rc, "value") else rc)
        self._connack.set()

    def _on_publish(self, c: Any, u: Any, mid: int, rc: Any, props: Any = None) -> None:
        with self._ack_ev:
            self._acks[mid] = int(rc.value if hasattr(rc, "value") else rc)
            self._ack_ev.notify_all()

    def _on_subscribe(self, c: Any, u: Any, mid: int, rcs: Any, props: Any = None) -> None:
        with self._ack_ev:
            self._acks[mid] = max(int(r.value if hasattr(r, "value") else r) for r in rcs)
            self._ack_ev.notify_all()

    def connect_rc(self, timeout: float = 10.0) -> int:
        """The CONNACK reason code (0 = accepted); the network loop keeps running when accepted."""
        self.c.connect("127.0.0.1", self.port)
        self.c.loop_start()
        if not self._connack.wait(timeout):
            raise TimeoutError("no CONNACK")
        assert self.connect_code is not None
        return self.connect_code

    def _wait_ack(self, mid: int, timeout: float) -> int:
        with self._ack_ev:
            if not self._ack_ev.wait_for(lambda: mid in self._acks, timeout):
                raise TimeoutError(f"no acknowledgement of message {mid}")
            return self._acks.pop(mid)

    def publish_rc(self, topic: str, payload: Any, timeout: float = 10.0) -> int:
        """PUBACK reason code of a QoS 1 publish: below 0x80 accepted (0x10: no subscriber), 0x87 not authorized."""
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        info = self.c.publish(topic, data, qos=1)
        return self._wait_ack(info.mid, timeout)

    def subscribe_rc(self, topic: str, timeout: float = 10.0) -> int:
        """SUBACK reason code: 1 granted (QoS 1), 0x87 not authorized."""
        rc, mid = self.c.subscribe(topic, qos=1)
        if mid is None:
            raise RuntimeError(f"SUBSCRIBE {topic} not sent: {rc}")
        return self._wait_ack(mid, timeout)

    def close(self) -> None:
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()
