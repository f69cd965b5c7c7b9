"""Validation of control messages from MQTT: what is accepted, and errors that say what is wrong."""
from __future__ import annotations

import orjson
import pytest

from common.wire import ProtocolError
from supervisor.control import parse_control


def _ctl(obj: object) -> bytes:
    return orjson.dumps(obj)


def test_control_create_and_delete_parsed() -> None:
    req = parse_control(_ctl({"object_id": "o", "action": "create", "type": "req", "data": {
        "type": "module", "uuid": "u", "name": "n", "file": "f.wasm", "args": {"argv": ["a"]},
        "channels": [{"path": "p", "mode": "r", "topic": "t"}]}}), where="w")
    assert req is not None and req.action == "create" and req.uuid == "u" and req.grants[0].topic == "t"
    req = parse_control(_ctl({"action": "delete", "data": {"type": "module", "uuid": "u"}}), where="w")
    assert req is not None and req.action == "delete"
    assert parse_control(_ctl({"action": "exited", "data": {}}), where="w") is None
    assert parse_control(_ctl({"action": "create", "type": "resp", "data": {}}), where="w") is None


@pytest.mark.parametrize("payload,match", [
    (b"{not json", "malformed JSON"),
    (b"[1,2]", "expected a JSON object"),
    (_ctl({"data": {}}), "missing key 'action'"),
    (_ctl({"action": "create"}), "missing key 'data'"),
    (_ctl({"action": "create", "data": {"type": "module"}}), "missing key 'uuid'"),
    (_ctl({"action": "create", "data": {"uuid": 5}}), "key 'uuid' must be str"),
    (_ctl({"action": "create", "data": {"uuid": "u", "args": []}}), "key 'args' must be dict"),
    (_ctl({"action": "create", "data": {"uuid": "u", "args": {"argv": "x"}}}), "key 'argv' must be list"),
    (_ctl({"action": "create", "data": {"uuid": "u", "channels": [{"path": 1}]}}), r"channels\[0\]"),
    (_ctl({"action": "explode", "data": {"uuid": "u"}}), "unknown action 'explode'"),
    (_ctl({"action": "create", "data": {"type": "runtime", "uuid": "u"}}), "type must be 'module'"),
])


def test_control_errors_say_what_is_wrong(payload: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_control(payload, where="control message on x")
