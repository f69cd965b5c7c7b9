"""Shared fixtures: a real mosquitto broker per test, an MQTT probe, and a guard that
fails any test leaving a POSIX queue or shared-memory object of ours behind."""
from __future__ import annotations

import os
from typing import Iterator

import pytest

from tests.helpers.broker import Mosquitto
from tests.helpers.mqtt import MqttProbe

IPC_DIRS = ("/dev/mqueue", "/dev/shm")


def _ipc_objects() -> set[str]:
    found: set[str] = set()
    for d in IPC_DIRS:
        try:
            found.update(f"{d}/{n}" for n in os.listdir(d) if n.startswith("sl."))
        except FileNotFoundError:
            pass
    return found


@pytest.fixture(autouse=True)
def no_leaked_ipc() -> Iterator[None]:
    before = _ipc_objects()
    yield
    leaked = _ipc_objects() - before
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
