"""Pure supervisor logic: state machine edges and backoff, control validation, identities,
registration sequencing, sd_notify datagrams, command line."""
from __future__ import annotations

import json
import os
import socket
import time

import orjson
import pytest

import runtimes
from common.wire import ProtocolError
from supervisor import cli
from supervisor.control import parse_control
from supervisor.identity import load_identity
from supervisor.notify import Notifier
from supervisor.registration import Registrar, manager_message
from supervisor.states import StateError, WorkerState, backoff_delay, check_edge

S = WorkerState


def test_state_edges() -> None:
    check_edge(S.STOPPED, S.STARTING)
    check_edge(S.STARTING, S.FATAL)
    check_edge(S.BACKOFF, S.STARTING)
    for bad in ((S.FATAL, S.STARTING), (S.RUNNING, S.FATAL), (S.STOPPED, S.RUNNING)):
        with pytest.raises(StateError):
            check_edge(*bad)


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_delay(i, 0.5) for i in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff_delay(30, 1.0) == 30.0


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


def test_identity_persists_and_uuid_flag_derives(tmp_path: "os.PathLike[str]") -> None:
    d = str(tmp_path)
    a = load_identity("n1", ["n1.a", "n1.b"], state_dir=d)
    b = load_identity("n1", ["n1.a", "n1.b"], state_dir=d)
    assert a == b
    assert json.load(open(os.path.join(d, "n1.json")))["manager"] == a.manager
    c = load_identity("n2", ["n2"], state_dir=d)
    assert c.manager != a.manager
    m = "11111111-2222-3333-4444-555555555555"
    x = load_identity("n3", ["n3"], state_dir=None, manager_uuid=m)
    y = load_identity("n3", ["n3"], state_dir=None, manager_uuid=m)
    assert x.manager == m and x.runtimes == y.runtimes
    assert load_identity("n4", ["n4"], state_dir=None).manager != load_identity("n4", ["n4"], state_dir=None).manager


def test_registrar_manager_first_then_runtimes_with_timeouts() -> None:
    sent: list[tuple[str, dict]] = []
    done: list[bool] = []
    oks: list[str] = []
    r = Registrar(timeout=0.05, send=lambda u, m: sent.append((u, m)), on_reply=lambda u, d: oks.append(u), on_done=lambda: done.append(True))
    r.start(("M", "manager", manager_message("M", "n")), [("R1", "rt1", {"object_id": "r1"}), ("R2", "rt2", {"object_id": "r2"})])
    assert [u for u, _ in sent] == ["M"]
    assert r.reply({"object_id": sent[0][1]["object_id"], "type": "resp", "data": {"result": "ok", "details": {}}})
    assert [u for u, _ in sent] == ["M", "R1", "R2"]
    assert r.reply({"object_id": "r1", "type": "resp", "data": {"result": "ok"}})
    assert not done
    time.sleep(0.06)
    r.tick()  # R2 timed out: logged, then done
    assert done == [True] and oks == ["M", "R1"]
    assert not r.reply({"object_id": "unknown"})


def test_notifier_sends_datagrams(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(str(tmp_path), "notify")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    try:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000"})
        assert n.watchdog_interval() == 1.5
        n.ready("ok")
        n.watchdog()
        assert srv.recv(100) == b"READY=1\nSTATUS=ok"
        assert srv.recv(100) == b"WATCHDOG=1"
        n.close()
        assert not Notifier({}).enabled
    finally:
        srv.close()


def test_cli_names_runtimes_like_the_seed(tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config.json here: embedded defaults
    s = cli.build_settings(["-n", "x", "-r", "test/echo", "test/reg", "test/echo", "--no-state"])
    assert s is not None
    assert [r.full_name for r in s.runtimes] == ["x.echo", "x.reg", "x.echo2"]
    s = cli.build_settings(["-n", "x", "-r", "test/reg", "--no-state"])
    assert s is not None and s.runtimes[0].full_name == "x" and s.config.mqtt == "localhost" and s.config.realm == "realm"


def test_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-n", "x", "-r", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown runtime 'nope'" in err and "test/echo" in err
    assert cli.main(["-n", "x", "-r", "test/reg", "--mqtt", "nohostport"]) == 2
    assert "--mqtt" in capsys.readouterr().err
    assert cli.main(["-n", "x", "-r", "test/reg", "-g", "999"]) == 2
    assert "not available" in capsys.readouterr().err
    assert cli.main(["-n", "x", "-r", "test/reg", "-c", "/nonexistent.json"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cpu_lists() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    assert cli.parse_cpus(str(cpus[0])) == [cpus[0]]
    assert cli.parse_cpus(f"{cpus[0]}-{cpus[-1]}") == cpus
    with pytest.raises(cli.UsageError):
        cli.parse_cpus("a-b")


def test_registry_lookup_and_aliases() -> None:
    assert runtimes.get("runtime-linux").name == "linux"
    assert runtimes.get("test/echo").short_name == "echo"
    with pytest.raises(runtimes.UnknownRuntime, match="known runtimes"):
        runtimes.get("zzz")
