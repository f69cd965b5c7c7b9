"""`linux/min/wasmer` as the original's: it registers `stdio:in` and takes its stdin from
`{realm}/proc/stdio/{uuid}`. A real node with the wasmer worker (Python 3.10),
a real broker, the create as the original orchestrator forwards it (with its `index` and `status`)."""
from __future__ import annotations

import uuid as uuidlib
from typing import Any

import orjson

from common.python310 import find_wasmer_python
from tests.helpers import original as O
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess

REALM = "realm"


def test_wasmer_min_reads_stdin_like_the_original(broker: Any, probe: MqttProbe, modules_dir: str) -> None:
    python, why = find_wasmer_python(None)
    assert python, f"linux/min/wasmer needs Python 3.10 with wasmer (`make env` builds .venv310): {why}"
    with NodeProcess(broker.port, name="wmin", runtimes=["linux/min/wasmer"]) as node:
        rt = node.runtime_uuid()
        reg = node.registrations[-1]["data"]
        assert reg["runtime_type"] == "linux/min/wasmer" and "stdio:in" in reg["apis"]
        mid = str(uuidlib.uuid4())
        create = O.req("create", {"type": "module", "uuid": mid, "name": "cat", "parent": rt, "file": "cat.wasm",
                                  "apis": ["wasm", "wasi"], "args": O.run_args(), "channels": [], "status": "A", "index": 7})
        probe.subscribe(f"{REALM}/proc/control/{rt}")
        topic = f"{REALM}/proc/stdio/{mid}"
        probe.subscribe(topic)
        probe.publish(f"{REALM}/proc/control/{rt}", create)
        for _ in range(100):  # until the module's stdio channel is subscribed
            probe.publish(topic, b"from the original\n", qos=1)
            try:
                probe.wait_for(topic, lambda m: m.payload == b"from the original\n", count=2, timeout=0.5)
                break
            except TimeoutError:
                continue
        echoed = [m for m in probe.messages(topic) if m.payload == b"from the original\n"]
        assert len(echoed) >= 2  # ours in, the module's copy out
        probe.publish(f"{REALM}/proc/control/{rt}", O.req("delete", {"type": "module", "uuid": mid}))
        ex = probe.wait_for(f"{REALM}/proc/control/{rt}", lambda m: orjson.loads(m.payload).get("action") == "exited",
                            timeout=30)[0].json()
        assert ex["data"]["uuid"] == mid and ex["data"]["status"]["reason"] == "deleted"
