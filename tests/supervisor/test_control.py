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
    assert req is not None and req.action == "create" and req.uuid == "u" and req.create is not None
    assert req.create.grants[0].topic == "t" and req.create.margs.argv_list() == ["a"]
    req = parse_control(_ctl({"action": "delete", "data": {"type": "module", "uuid": "u"}}), where="w")
    assert req is not None and req.action == "delete"
    assert parse_control(_ctl({"action": "exited", "data": {}}), where="w") is None  # malformed, not ours to judge
    assert parse_control(_ctl({"action": "exited", "data": {"uuid": "u", "status": "exited"}}), where="w") is None
    assert parse_control(_ctl({"action": "create", "type": "resp", "data": {}}), where="w") is None


@pytest.mark.parametrize("payload,match", [
    (b"{not json", "malformed JSON"),
    (b"[1,2]", "expected a JSON object"),
    (_ctl({"data": {}}), "missing key 'action'"),
    (_ctl({"action": "create"}), "missing key 'data'"),
    (_ctl({"action": "create", "data": {"type": "module"}}), "missing key 'data.uuid'"),
    (_ctl({"action": "create", "data": {"uuid": ""}}), "key 'data.uuid' is empty"),
    (_ctl({"action": "create", "data": {"uuid": 5}}), "key 'data.uuid' must be str"),
    (_ctl({"action": "create", "data": {"uuid": "u", "args": []}}), "key 'data.args' must be object"),
    (_ctl({"action": "create", "data": {"uuid": "u", "args": {"argv": "x"}}}), "key 'data.args.argv' must be array"),
    (_ctl({"action": "create", "data": {"uuid": "u", "args": {"env": ["NOEQUALS"]}}}), r"key 'data.args.env\[0\]' must be a 'NAME=VALUE' string, got 'NOEQUALS'"),
    (_ctl({"action": "create", "data": {"uuid": "u", "args": {"resources": {"period": 1}}}}), "missing key 'data.args.resources.runtime'"),
    (_ctl({"action": "create", "data": {"uuid": "u", "args": {"repeat": 0}}}), "key 'data.args.repeat' must be int >= 1"),
    (_ctl({"action": "create", "data": {"uuid": "u", "file": ""}}), "key 'data.file': must not be empty"),
    (_ctl({"action": "create", "data": {"uuid": "u", "channels": [{"path": 1}]}}), r"key 'data.channels\[0\].path' must be str"),
    (_ctl({"action": "create", "data": {"uuid": "u", "channels": [{"path": "p", "mode": "x", "topic": "t"}]}}),
     r"key 'data.channels\[0\].mode': invalid enum value 'x'"),
    (_ctl({"action": "explode", "data": {"uuid": "u"}}), r"key 'action': invalid value 'explode' \(.* takes create, delete, exited\)"),
    (_ctl({"action": "create", "data": {"type": "runtime", "uuid": "u"}}), "key 'data.type': invalid enum value 'runtime'"),
])
def test_control_errors_say_what_is_wrong(payload: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_control(payload, where="control message on x")
