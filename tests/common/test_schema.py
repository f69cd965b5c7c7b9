"""The message schema (common/schema.py): every JSON message of docs/protocol.md decodes into its
typed definition in one pass, and a wrong one is one line that names the key's path (and the value)."""
from __future__ import annotations

from typing import Any

import orjson
import pytest

from common import schema
from common.wire import ProtocolError, one_line, quote, skeleton

W = "message on t"


def enc(obj: Any) -> bytes:
    return orjson.dumps(obj)


def test_each_message_decodes_typed() -> None:
    c = schema.decode_control(enc({"object_id": "o", "action": "create", "data": {
        "filename": "x.wasm", "args": {"argv": ["a"], "env": ["A=1"], "resources": {"period": 10, "runtime": 5},
                                       "role": "sink"}, "channels": [{"path": "p", "mode": "rw", "topic": "t"}]}}), W)
    assert isinstance(c, schema.CreateMsg) and c.object_id == "o"
    assert c.data.file == "x.wasm" and c.data.margs.argv_list() == ["a"] and c.data.margs.env_dict() == {"A": "1"}
    assert c.data.args == {"argv": ["a"], "env": ["A=1"], "resources": {"period": 10, "runtime": 5}, "role": "sink"}
    assert c.data.grants == [schema.Grant("p", "rw", "t")] and c.data.margs.resources == schema.Resources(10, 5)
    b = schema.decode_control(enc({"action": "create_batch", "data": {"modules": [{"file": "a"}, {"file": "b"}], "parent": "r"}}), W)
    assert isinstance(b, schema.CreateBatchMsg) and [m.file for m in b.data.modules] == ["a", "b"]
    assert isinstance(schema.decode_control(enc({"action": "delete", "data": {"uuid": "u"}}), W), schema.DeleteMsg)
    camp = schema.decode_control(enc({"action": "create_campaign", "data": {"campaign": "c", "plan": {
        "runtimes": ["r"], "files": ["f"], "engines": ["e"], "argsets": [["1"], ["2"]], "args": {"repeat": 3}}}}), W)
    assert isinstance(camp, schema.CampaignMsg) and camp.data.checked.argsets == [["1"], ["2"]]
    assert camp.data.plan["args"] == {"repeat": 3}  # stored as sent
    assert isinstance(schema.decode_control(enc({"action": "resume_campaign", "data": {"campaign": "c"}}), W), schema.ResumeMsg)
    reg = schema.decode_reg(enc({"action": "create", "data": {"type": "runtime", "name": "n", "max_nmodules": 4,
                                                               "apis": ["wasm"], "metadata": {"pid": 1}, "page_size": 65536}}), W)
    assert isinstance(reg, schema.RegisterMsg) and reg.data.max_nmodules == 4 and reg.data.metadata == {"pid": 1}
    unreg = schema.decode_reg(enc({"action": "delete", "data": {"type": "manager", "uuid": "m", "last_will": True}}), W)
    assert isinstance(unreg, schema.UnregisterMsg) and unreg.data.last_will
    ka = schema.decode_keepalive(enc({"action": "update", "data": {"children": [{"uuid": "u", "cpu": 1.5}]}}), W)
    assert isinstance(ka, schema.KeepaliveMsg) and ka.data.children == [{"uuid": "u", "cpu": 1.5}]
    ex = schema.decode_exited(enc({"action": "exited", "data": {"uuid": "u", "status": "exited", "samples": 3}}), W)
    assert isinstance(ex, schema.ExitedOpenMsg) and ex.data["samples"] == 3  # open: a worker's own fields stay
    node_ex = schema.decode_runtime_control(enc({"action": "exited", "data": {"uuid": "u", "status": {"reason": "exited"}}}), W)
    assert isinstance(node_ex, schema.ExitedMsg)


def test_replies_and_other_parties_actions_are_told_apart() -> None:
    r = schema.decode_reg(enc({"action": "create", "type": "resp", "data": {"result": "ok", "details": {}}}), W)
    assert isinstance(r, schema.Reply) and r.data["result"] == "ok"
    h = schema.decode_runtime_control(enc({"action": "exited", "data": {}}), W, ignore=("exited",))
    assert isinstance(h, schema.Head) and h.action == "exited"
    assert isinstance(schema.decode_exited(enc({"action": "create", "data": {"file": "x"}}), W), schema.Head)
    d = schema.decode_control(enc({"action": "apply_deployment", "data": {"x": 1}}), W, ignore=("apply_deployment",))
    assert isinstance(d, schema.Head) and d.action == "apply_deployment"


@pytest.mark.parametrize("msg,line", [
    (b"{nope", "malformed JSON"),
    (b"[1]", "expected a JSON object, got array"),
    ({"data": {}}, "missing key 'action'"),
    ({"action": "create", "data": {"uuid": 5}}, "key 'data.uuid' must be str, got int 5"),
    ({"action": "create", "data": {"args": {"env": ["NOPE"]}}}, "key 'data.args.env[0]' must be a 'NAME=VALUE' string, got 'NOPE'"),
    ({"action": "create", "data": {"args": {"repeat": "many"}}}, "key 'data.args.repeat' must be int, got str 'many'"),
    ({"action": "create", "data": {"args": {"limit": 0}}}, "key 'data.args.limit' must be float > 0.0, got 0"),
    ({"action": "create", "data": {"args": {"fault_crash": "often"}}}, "key 'data.args.fault_crash': invalid enum value 'often'"),
    ({"action": "create", "data": {"channels": [{"path": "p", "topic": "t"}]}}, "missing key 'data.channels[0].mode'"),
    ({"action": "create", "data": {"file": ""}}, "key 'data.file': must not be empty"),
    ({"action": "create", "data": {"type": "runtime"}}, "key 'data.type': invalid enum value 'runtime'"),
    ({"action": "explode", "data": {}}, "key 'action': invalid value 'explode' (t takes create, create_batch, delete,"),
    ({"action": "create_campaign", "data": {"campaign": "c", "plan": {"runtimes": ["r"], "files": [], "engines": ["e"]}}},
     "key 'data.plan.files' must be array of length >= 1, got []"),
    ({"action": "create_campaign", "data": {"campaign": "c", "plan": {"runtimes": ["r"], "files": ["f"], "engines": ["e"],
                                                                     "order": "random"}}}, "key 'data.plan.order': invalid enum value 'random'"),
])
def test_a_wrong_message_is_one_line_naming_the_key(msg: Any, line: str) -> None:
    with pytest.raises(ProtocolError) as e:
        schema.decode_control(msg if isinstance(msg, bytes) else enc(msg), W)
    text = str(e.value)
    assert text.startswith(f"{W}: ") and line in text and "\n" not in text, text


def test_registration_and_keepalive_errors() -> None:
    with pytest.raises(ProtocolError, match=r"key 'data.max_nmodules' must be int >= 0, got -1"):
        schema.decode_reg(enc({"action": "create", "data": {"type": "runtime", "name": "n", "max_nmodules": -1}}), W)
    with pytest.raises(ProtocolError, match=r"key 'data.max_nmodules' must be int, got bool True"):
        schema.decode_reg(enc({"action": "create", "data": {"type": "runtime", "name": "n", "max_nmodules": True}}), W)
    with pytest.raises(ProtocolError, match=r"missing key 'data.name'"):
        schema.decode_reg(enc({"action": "create", "data": {"type": "runtime"}}), W)
    with pytest.raises(ProtocolError, match=r"key 'action': invalid value 'create' \(t takes update\)"):
        schema.decode_keepalive(enc({"action": "create", "data": {}}), W)
    with pytest.raises(ProtocolError, match=r"missing key 'data.uuid'"):
        schema.decode_exited(enc({"action": "exited", "data": {"status": "exited"}}), W)


def test_a_refused_create_says_which_module_and_request() -> None:
    with pytest.raises(schema.SchemaError) as e:
        schema.decode_runtime_control(enc({"object_id": "o1", "action": "create", "data": {"uuid": "m1", "args": []}}), W)
    assert (e.value.action, e.value.uuid, e.value.object_id) == ("create", "m1", "o1")
    assert e.value.detail == "key 'data.args' must be object, got array []"


def test_a_batch_with_a_bad_module_is_checked_module_by_module() -> None:
    b = schema.decode_control(enc({"action": "create_batch", "data": {"modules": [{"file": "a"}, {"file": 3}]}}), W)
    assert isinstance(b, schema.CreateBatchOpenMsg) and b.data.modules == [{"file": "a"}, {"file": 3}]
    assert schema.check_create(b.data.modules[0], "m").file == "a"
    with pytest.raises(ProtocolError, match=r"^m: key 'file' must be str, got int 3$"):
        schema.check_create(b.data.modules[1], "m")
    with pytest.raises(ProtocolError, match=r"key 'data.modules' must be array"):  # the batch itself is wrong
        schema.decode_control(enc({"action": "create_batch", "data": {"modules": {}}}), W)


def test_benchmark_argv_lists_and_plain_argv() -> None:
    a = schema.check_create({"file": "f", "args": {"argv": [["1"], ["2", "3"]]}}, "m").margs
    assert a.argv_lists() == ([["1"], ["2", "3"]], True)
    with pytest.raises(ValueError):
        a.argv_list()
    assert schema.check_create({"file": "f", "args": {"argv": ["1"]}}, "m").margs.argv_lists() == ([["1"]], False)


def test_config_and_runtime_settings_are_typed() -> None:
    cfg = schema.check_config({"mqtt_port": 1884, "runtimes": {"linux": {"memory_limit": 1 << 20, "its_own": [1]}}})
    assert cfg.mqtt_port == 1884 and cfg.runtimes["linux"]["its_own"] == [1]  # a runtime's own keys pass
    for raw, line in (({"mqtt_port": "1883"}, "key 'mqtt_port' must be int, got str '1883'"),
                      ({"mqtt_port": 70000}, "key 'mqtt_port' must be int <= 65535, got 70000"),
                      ({"runtimes": []}, "key 'runtimes' must be object, got array []"),
                      ({"runtimes": {"linux": {"memory_limit": "1G"}}}, "key 'runtimes.linux.memory_limit' must be int, got str '1G'"),
                      ({"runtimes": {"b": {"child_limits": {"cpu": 1}}}}, "key 'runtimes.b.child_limits': unknown key 'cpu'")):
        with pytest.raises(schema.ConfigError) as e:
            schema.check_config(raw)
        assert line in str(e.value), str(e.value)


def test_campaign_profiles() -> None:
    v3 = schema.decode_campaign_profile(enc({"v": 3, "part": [1, 3], "runs": {"outcome": ["ok", "trap"], "wall_ns": [1, 2]}}))
    assert v3 is not None and v3.part == (1, 3) and v3.outcomes() == ["ok", "trap"]
    if2 = schema.decode_campaign_profile(enc({"v": 2, "loops": [{"runs": {"outcome": ["ok"]}}, {"runs": {"outcome": ["limit"]}}]}))
    assert if2 is not None and if2.part == (0, 1) and if2.outcomes() == ["ok", "limit"]
    for bad in (b"\x00\x01", enc([1]), enc({"part": [3, 3]}), enc({"runs": {"outcome": [1]}})):
        assert schema.decode_campaign_profile(bad) is None


def test_offending_payloads_are_quoted_short() -> None:
    big = enc({"action": "create_batch", "object_id": "o", "data": {"modules": [{"uuid": f"u{i}", "pad": "x" * 100} for i in range(50)]}})
    q = quote(big)
    assert q is not None and q.endswith(f"... ({len(big)} bytes)") and len(q) <= 200 + len(f"... ({len(big)} bytes)")
    assert quote(b"short") == "short" and quote(None) is None
    sk = skeleton(orjson.loads(big), big)
    assert sk["action"] == "create_batch" and sk["object_id"] == "o" and sk["bytes"] == len(big)
    assert sk["data"]["modules"] == [{"uuid": f"u{i}"} for i in range(50)] and "pad" not in str(sk["data"])
    line = one_line("a\nb" + "c" * 1000)
    assert "\n" not in line and len(line) < 700 and line.endswith("(1003 characters)")


def test_json_nested_thousands_deep_is_refused_not_raised() -> None:
    """Regression: msgspec raised RecursionError on `args` nested 1,000 deep, which the node's loop
    does not catch (and the orchestrator took for an internal error, reloading its store)."""
    deep = b"[" * 5000 + b"]" * 5000
    for payload, dec in ((b'{"action":"create","data":{"uuid":"u","args":{"x":' + deep + b"}}}", schema.decode_runtime_control),
                         (b'{"action":"create","data":{"uuid":"u","args":{"x":' + deep + b"}}}", schema.decode_control),
                         (b'{"action":"create","type":"resp","data":' + deep + b"}", schema.decode_reg),
                         (b'{"action":"exited","data":{"uuid":"u","x":' + deep + b"}}", schema.decode_exited),
                         (b'{"action":"update","data":{"children":[' + deep + b"]}}", schema.decode_keepalive)):
        with pytest.raises(ProtocolError, match=r"^message on t: "):
            dec(payload, W)
    assert schema.decode_campaign_profile(b'{"runs":' + deep + b"}") is None
