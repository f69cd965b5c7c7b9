"""Shared fixtures: a real mosquitto broker per test, an MQTT probe, a real orchestrator (`orch`),
and a guard that fails any test leaving a POSIX queue or shared-memory object of ours behind."""
from __future__ import annotations

import os
import re
import subprocess
import time
from typing import Any, Iterator

import pytest

from testbed.bench_modules import build_modules
from testbed.broker import Mosquitto
from testbed.mqtt import MqttProbe
from testbed.orchestrator import OrchestratorProc

IPC_DIRS = ("/dev/mqueue", "/dev/shm")


def _mount_mqueue() -> None:
    """Make POSIX queues visible in /dev/mqueue (not mounted on every machine) when root."""
    if os.path.ismount("/dev/mqueue") or os.geteuid() != 0:
        return
    os.makedirs("/dev/mqueue", exist_ok=True)
    subprocess.run(["mount", "-t", "mqueue", "none", "/dev/mqueue"], check=False, capture_output=True)


_mount_mqueue()


def _ipc_objects() -> set[str]:
    found: set[str] = set()
    for d in IPC_DIRS:
        try:
            found.update(f"{d}/{n}" for n in os.listdir(d) if n.startswith("sl."))
        except FileNotFoundError:
            pass
    return found


def _owner_pid(path: str) -> int:
    m = re.match(r"sl\.(\d+)", os.path.basename(path))
    return int(m.group(1)) if m else -1


def _is_ours(pid: int) -> bool:
    """Dead (a real leak), or alive and a descendant of this pytest (not stopped).

    Objects of live processes that are not ours belong to someone else's concurrent run.
    """
    me = os.getpid()
    while pid > 1:
        if pid == me:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return True  # gone: nobody will unlink it any more
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(autouse=True)
def no_leaked_ipc() -> Iterator[None]:
    before = _ipc_objects()
    yield
    leaked = {p for p in _ipc_objects() - before if _is_ours(_owner_pid(p))}
    if leaked and any(_alive(_owner_pid(p)) is False for p in leaked):
        # An object whose owner is gone may be another suite's (a developer's second checkout running
        # its tests beside this one), which that suite unlinks in its own teardown: give those a few
        # seconds to go. Ours stay, and fail the test below.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and leaked:
            time.sleep(0.1)
            leaked &= _ipc_objects()
    for path in leaked:  # clean up so one leak does not cascade into other tests
        try:
            os.unlink(path)
        except OSError:
            pass
    assert not leaked, f"test left IPC objects behind: {sorted(leaked)}"


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    with Mosquitto() as b:
        yield b


@pytest.fixture
def probe(broker: Mosquitto) -> Iterator[MqttProbe]:
    p = MqttProbe(broker.port)
    yield p
    p.close()


@pytest.fixture
def orch(broker: Mosquitto, tmp_path: Any, request: pytest.FixtureRequest) -> Iterator[OrchestratorProc]:
    """A real orchestrator process on the test broker, its store in tmp_path, always stopped.
    Options: `pytestmark = pytest.mark.orchestrator(ka_interval=0.5, extra_args=[...])` in a module
    (or on one test); the default keepalive interval is 1 s."""
    marker = request.node.get_closest_marker("orchestrator")
    kw: dict[str, Any] = {"ka_interval": 1.0, **(marker.kwargs if marker else {})}
    with OrchestratorProc(broker.port, str(tmp_path), **kw) as o:
        yield o


@pytest.fixture(scope="session")
def wasm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The benchmarking test modules (testbed/bench_modules.py), built once per session."""
    out = tmp_path_factory.mktemp("bench-modules")
    yield build_modules(str(out))


@pytest.fixture(scope="session")
def wasm_root(wasm: dict[str, str]) -> str:
    """The directory of the built test modules: the module root of the test nodes (runtimes/files.py)."""
    return os.path.dirname(next(iter(wasm.values())))
