"""Issue #25 (orchestrator/guard.py): one live runtime per name, the realm's identities, profiles only
from the runtime a module was placed on. Unit tests over the state machine (the Harness of test_core)."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from common.wire import envelope
from orchestrator.guard import Guard
from tests.orchestrator.test_core import Harness

R = "realm"


def test_a_second_live_runtime_of_a_name_is_refused_as_a_duplicate(h: Harness) -> None:
    h.manager()
    assert h.runtime("rt-nb", "nb", pid=10)["data"]["result"] == "ok"
    h.send(f"{R}/proc/keepalive/rt-nb", envelope("update", {"type": "runtime", "uuid": "rt-nb", "name": "nb", "children": []}))
    h.manager("m-0002", "na")
    r = h.runtime("rt-sq", "nb", parent="m-0002", pid=20)  # a squatter takes nb's name with its own uuid
    assert r["data"]["result"] == "error" and r["data"]["details"]["reason"] == "duplicate"
    assert "one live runtime per name" in r["data"]["details"]["description"]
    assert r["data"]["details"]["holder"]["uuid"] == "rt-nb" and r["data"]["details"]["retry_after"] > 0
    h.errors()
    h.create("mod-1", parent="nb")  # a create addressed by name reaches the real nb only
    assert h.creates("rt-nb") == ["mod-1"] and h.creates("rt-sq") == []
    # nb goes (a delete): the name is free again
    h.send(f"{R}/proc/reg/rt-nb", envelope("delete", {"type": "runtime", "uuid": "rt-nb", "name": "nb"}))
    assert h.runtime("rt-sq", "nb", parent="m-0002", pid=20)["data"]["result"] == "ok"


def test_identities_refuse_other_uuids_and_names(h: Harness) -> None:
    h.o.guard = Guard({"m-0001": ("manager", "node1"), "rt-1": ("runtime", "node1")})
    h.manager()
    assert h.runtime("rt-1", "node1", pid=1)["data"]["result"] == "ok"
    h.send(f"{R}/proc/reg/m-0002", envelope("create", {"type": "manager", "uuid": "m-0002", "name": "node2"}))
    r = h.take(f"{R}/proc/reg/m-0002")[-1][1]
    assert r["data"]["result"] == "error" and "not in the realm's identities" in r["data"]["details"]["description"]
    h.o.guard = Guard({"m-0001": ("manager", "node1"), "rt-1": ("runtime", "node1"), "rt-2": ("runtime", "node2")})
    r2 = h.runtime("rt-2", "node1.other", pid=1)  # its own uuid, another name
    assert r2["data"]["result"] == "error" and "'node2'" in r2["data"]["details"]["description"]


def test_a_profile_from_another_runtime_is_refused(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one", pid=1)
    h.runtime("rt-2", "two", pid=2)
    h.create("mod-1", parent="one")
    assert h.creates("rt-1") == ["mod-1"]
    h.errors()
    h.send(f"{R}/proc/profile/benchmarking-v3/rt-2/mod-1", b"{}")
    errs = h.errors()
    assert any("runs on rt-1" in e["description"] for e in errs), errs
    h.send(f"{R}/proc/profile/benchmarking-v3/rt-1/mod-1", b"{}")  # its own runtime: not refused here
    assert not any("refused" in e["description"] for e in h.errors())


def test_an_exited_from_another_runtime_is_refused(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one", pid=1)
    h.runtime("rt-2", "two", pid=2)
    h.create("mod-1", parent="one")
    h.errors()
    h.exited("rt-2", "mod-1")
    assert any("runs on rt-1" in e["description"] for e in h.errors())
    assert h.status("mod-1") == "A"
