"""Our node registers what the original SilverLine node registers for the same runtimes, and
reads the original's config.json (docs/compatibility.md): a real node (`start.py`), a real
broker; the expected values are docs/compatibility.md, "The original runtimes", field for field (tests/helpers/original.py)."""
from __future__ import annotations

import json
import os
from typing import Any

from runtimes import get as runtime_spec
from tests.helpers import original as O
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess

REALM = "realm"
# our start.py name -> the original's (same name, aliases resolved)
OURS = ["linux", "linux/min/wasmer", "benchmarking", "benchmarking/seeded", "benchmarking/if", "benchmarking/opcodes", "test/reg"]
ORIGINAL_KEYS = {"type", "uuid", "name", "runtime_type", "max_nmodules", "apis", "platform", "metadata", "parent"}


def _available(name: str) -> bool:
    return runtime_spec(name).load().unavailable({}) is None


def test_registrations_carry_the_originals_type_apis_and_fields(broker: Any, probe: MqttProbe) -> None:
    names = [n for n in OURS if _available(n)]
    assert "linux/min/wasmer" in names or not os.path.exists(".venv310"), "wasmer runtime unavailable beside .venv310"
    probe.subscribe(f"{REALM}/proc/reg/#")
    with NodeProcess(broker.port, name="orignode", runtimes=names) as n:
        regs = {m["data"]["name"]: m["data"] for m in n.registrations if m["data"]["type"] == "runtime"}
    assert len(regs) == len(names)
    for name in names:
        original = "benchmarking/interference" if name == "benchmarking/if" else name
        d = regs[f"orignode.{runtime_spec(name).short_name}"]
        runtime_type, apis, max_n = O.RUNTIMES[original]
        assert ORIGINAL_KEYS <= set(d), (name, set(d))
        assert d["runtime_type"] == runtime_type, name
        # test/reg: the original registers 0, which our orchestrator reads as "no limit"; ours takes
        # (and ignores) up to 128 modules (docs/compatibility.md)
        assert d["max_nmodules"] == (128 if name == "test/reg" else max_n), name
        assert d["apis"][:len(apis)] == apis, (name, d["apis"])  # the original's names first, ours may follow
        assert d["metadata"]["host"] and d["parent"] == n.manager_uuid
        if name in ("linux", "linux/min/wasmer"):
            assert d["page_size"] == 65536, name
            assert d["aot_target"]["engine"] in ("wasmtime", "wasmer") and d["aot_target"]["triple"].endswith("-linux-gnu")
        else:
            assert "page_size" not in d and "aot_target" not in d, name


def test_a_missing_password_file_is_a_warning_and_the_node_connects(broker: Any, tmp_path: Any) -> None:
    """The original's config names `../mqtt_pwd.txt`; where it does not exist the node
    warns and connects without a password (as the original), instead of failing."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"mqtt_username": "cli", "pwd": str(tmp_path / "mqtt_pwd.txt"), "realm": REALM,
                               "file_store": "localhost", "file_store_port": 8001}))
    with NodeProcess(broker.port, name="pwdnode", runtimes=["test/reg"], extra_args=["-c", str(cfg)]) as n:
        assert n.manager_uuid
        out = n.output()
    assert "key 'pwd': password file" in out and "does not exist; connecting without a password" in out, out
    assert "file_store" not in out or "does not use it" in out  # accepted: no error about it
