"""Issue #25 (runtimes/wasm/limits.py): the linux runtime's file-size limit and aggregate memory bound.
A real mosquitto, a real node with a `linux` runtime, real wasm (build/modules/filler.wasm, loop.wasm)."""
from __future__ import annotations

import json
import os
import tempfile
import uuid as uuidlib
from testbed.broker import Mosquitto
from testbed.control import create, delete, exited
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from tests.runtimes.conftest import MODULES

R = "realm"


def test_file_size_and_memory_total(modules_dir: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        cfg = os.path.join(tmp, "config.json")
        with open(cfg, "w") as f:  # 1 MiB files; two modules of 32 MiB fit in 64 MiB, a third does not
            json.dump({"runtimes": {"linux": {"memory_limit": 32 << 20, "memory_total": 64 << 20, "file_bytes": 1 << 20,
                                              "cache_dir": os.path.join(tmp, "cache"), "module_root": [MODULES, data]}}}, f)
        node = NodeProcess(broker.port, name="lim", runtimes=["linux"], reg_timeout=0.3, extra_args=["-c", cfg])
        probe = MqttProbe(broker.port)
        try:
            node.start(timeout=90)
            rt = node.runtime_uuid()
            probe.subscribe(f"{R}/proc/#")
            # a module writing 4 MiB is stopped at 1 MiB with EFBIG; the worker and the node go on
            big = str(uuidlib.uuid4())
            create(probe, rt, big, file="filler.wasm", argv=[os.path.join(data, "out.bin"), "4"], dirs=[data])
            ex = exited(probe, rt, big, 60)
            out = b"".join(m.payload for m in probe.messages(f"{R}/proc/stdio/{big}")).decode()
            assert "wrote 1048576 bytes, then: File too large" in out, (out, ex)
            assert os.path.getsize(os.path.join(data, "out.bin")) == 1 << 20
            small = str(uuidlib.uuid4())
            create(probe, rt, small, file="filler.wasm", argv=[os.path.join(data, "small.bin"), "0"], dirs=[data])
            assert exited(probe, rt, small, 60)["status"]["reason"] == "exited"
            # aggregate memory: two long-running modules fit, the third is refused at create, naming the settings
            loops = [str(uuidlib.uuid4()) for _ in range(3)]
            for u in loops:  # the worker takes creates in order: the third finds the first two reserved
                create(probe, rt, u, file="loop.wat")
            refused = exited(probe, rt, loops[2], 60)
            assert refused["status"]["reason"] == "error" and "memory_total 67108864" in refused["status"]["error"], refused
            for u in loops[:2]:
                delete(probe, rt, u)
                assert exited(probe, rt, u, 60)["status"]["reason"] == "deleted"
            assert node.proc is not None and node.proc.poll() is None
        finally:
            probe.close()
            node.stop()


def test_bad_limit_settings_are_named() -> None:
    import pytest

    from runtimes.wasm.limits import Limits
    with pytest.raises(ValueError, match="file_bytes"):
        Limits({"file_bytes": -1}, 1)
    with pytest.raises(ValueError, match="memory_total"):
        Limits({"memory_total": "lots"}, 1)
    lim = Limits({"memory_total": None, "file_bytes": None}, 1 << 20)
    assert lim.refuse(10_000) is None and lim.file_bytes is None
