"""manage.py acl's fleet path (issue #25): a CA and broker certificate (openssl), the TLS listener lines and
each account's config keys; a real mosquitto with those files and a real node that uses them."""
from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import uuid as _uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cli import acl
from testbed.broker import Mosquitto, free_port
from testbed.node import NodeProcess
from testbed.wait import wait_until


def _client(port: int, user: str, pw: str, ca: str | None) -> tuple[mqtt.Client, list[tuple[str, bytes]], dict[str, Any]]:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, pw)
    if ca:
        c.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
    got: list[tuple[str, bytes]] = []
    state: dict[str, Any] = {"ev": threading.Event()}
    c.on_message = lambda cl, u, m: got.append((m.topic, bytes(m.payload)))

    def on_connect(cl: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        state["rc"] = rc
        state["ev"].set()
    c.on_connect = on_connect
    return c, got, state


def test_tls_realm_end_to_end(tmp_path: Any) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "nb.json").write_text(json.dumps({"manager": str(_uuid.uuid4()), "runtimes": {"nb": str(_uuid.uuid4())}}))
    out = tmp_path / "acl"
    port = free_port()
    assert acl.main(["-o", str(out), "--broker", "127.0.0.1", "--port", str(port), str(state / "nb.json")]) == 0
    tls = out / "tls"
    assert all((tls / f).exists() for f in ("ca.crt", "ca.key", "broker.crt", "broker.key"))
    assert os.stat(tls / "ca.key").st_mode & 0o077 == 0 and os.stat(tls / "broker.key").st_mode & 0o077 == 0
    cfg = json.loads((out / "config" / "nb.json").read_text())
    assert cfg["use_ssl"] is True and cfg["mqtt"] == "127.0.0.1" and cfg["mqtt_port"] == port and cfg["mqtt_username"] == "nb"
    ca_before, cert_before = (tls / "ca.crt").read_bytes(), (tls / "broker.crt").read_bytes()
    assert acl.main(["-o", str(out), "--broker", "127.0.0.1", "--port", str(port), str(state / "nb.json")]) == 0
    assert (tls / "ca.crt").read_bytes() == ca_before and (tls / "broker.crt").read_bytes() == cert_before  # kept
    conf = (out / "mosquitto-tls.conf").read_text()
    assert f"listener {port}\n" in conf and "use_username_as_clientid true" in conf
    broker = Mosquitto(port=port)
    with open(broker.conf) as f:
        base = [ln for ln in f.read().splitlines() if not ln.startswith(("listener", "allow_anonymous"))]
    with open(broker.conf, "w") as f:  # the generated lines first (per_listener_settings), on loopback here
        f.write(conf.replace(f"listener {port}\n", f"listener {port} 127.0.0.1\n") + "\n".join(base) + "\n")
    pw = (out / "passwords" / "collector").read_text().strip()
    node_cfg = tmp_path / "nb-config.json"
    node_cfg.write_text(json.dumps(cfg))
    with broker:
        watch, got, st = _client(port, "collector", pw, str(tls / "ca.crt"))
        node = NodeProcess(port, name="nb", runtimes=["test/reg"], state_dir=str(state), reg_timeout=0.5,
                           extra_args=["-c", str(node_cfg)])
        try:
            watch.connect("127.0.0.1", port)
            watch.loop_start()
            assert st["ev"].wait(15) and not st["rc"].is_failure, st
            watch.subscribe("realm/proc/reg/#", qos=1)
            node.start(wait=False)
            try:
                wait_until(lambda: any(b'"nb"' in p and b'"create"' in p for _, p in list(got)), 60, "nb registers over TLS")
            except TimeoutError:
                raise AssertionError(node.output()[-3000:] + repr(got[:5])) from None
            # a plain MQTT CONNECT gets no CONNACK: the listener speaks TLS only and closes the connection
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sk:
                sk.sendall(bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 0]))
                try:
                    got_back = sk.recv(16)
                except ConnectionResetError:
                    got_back = b""
                assert got_back == b"", got_back
        finally:
            watch.loop_stop()
            watch.disconnect()
            node.stop()
