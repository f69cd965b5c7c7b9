"""manage.py acl: the password and ACL files it writes, used by a real mosquitto with a real
orchestrator and two real nodes: a node cannot create a module on another node, an anonymous client
cannot create anything, and everything legitimate (registration, a run through the orchestrator,
stdout, exited, application channels) still works."""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid as _uuid
from typing import Any

import pytest

from cli import acl
from testbed.acl import NOT_AUTHORIZED, AclRealm, AuthClient
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until

R = "realm"


def _create(uuid: str, parent: str, file: str = "helloworld.wasm") -> dict[str, Any]:
    return {"object_id": str(_uuid.uuid4()), "action": "create", "type": "req",
            "data": {"type": "module", "uuid": uuid, "name": "hello", "parent": parent, "file": file, "args": {}}}


def test_password_hash_is_what_mosquitto_passwd_verifies(tmp_path: Any) -> None:
    h = acl.password_hash("s3cret", salt=b"0123456789ab")
    assert h.startswith("$7$101$") and h == acl.password_hash("s3cret", salt=b"0123456789ab")
    assert h != acl.password_hash("other", salt=b"0123456789ab")


def test_bad_input_is_named(tmp_path: Any, capsys: Any) -> None:
    (tmp_path / "n1.json").write_text(json.dumps({"manager": "nope", "runtimes": {}}))
    assert acl.main(["-o", str(tmp_path / "o"), str(tmp_path / "n1.json")]) == 1
    assert "n1.json" in capsys.readouterr().err
    (tmp_path / "n2.json").write_text(json.dumps({"manager": str(_uuid.uuid4()), "runtimes": {"n2": str(_uuid.uuid4())}}))
    assert acl.main(["-o", str(tmp_path / "o"), "--channel", "#", str(tmp_path / "n2.json")]) == 1
    assert "--channel" in capsys.readouterr().err
    assert acl.main(["-o", str(tmp_path / "o"), str(tmp_path / "missing.json")]) == 1


def test_a_realm_under_its_acl(tmp_path: Any) -> None:
    realm = AclRealm(str(tmp_path), {"na": ["na"], "nb": ["nb"]}, channels=["apps/#"])
    # the files: hashed passwords only, secrets 0600, re-running keeps the passwords
    passwd = (tmp_path / "acl" / "mosquitto.passwd").read_text()
    assert "cli:$7$" in passwd and realm.password("cli") not in passwd
    assert os.stat(realm.password_file("na")).st_mode & 0o077 == 0
    before = realm.password("na")
    assert acl.main(["-o", realm.out, "--channel", "apps/#", os.path.join(realm.state, "na.json"),
                     os.path.join(realm.state, "nb.json")]) == 0
    assert realm.password("na") == before
    rt_a, rt_b = realm.runtime("na"), realm.runtime("nb")
    with realm.broker() as broker:
        orch = OrchestratorProc(broker.port, str(tmp_path))
        realm.config("orchestrator", broker.port, orch.config, realm=R, http="127.0.0.1", http_port=orch.http_port)
        orch.start()
        nodes = []
        cli = AuthClient(broker.port, "cli", realm.password("cli"))
        a = AuthClient(broker.port, "na", realm.password("na"))
        try:
            for name in ("na", "nb"):
                cfg = realm.config(name, broker.port, str(tmp_path / f"{name}.json"))
                n = NodeProcess(broker.port, name=name, runtimes=["linux"], state_dir=realm.state, reg_timeout=5,
                                extra_args=["-c", cfg], watch_auth=("cli", realm.password("cli")))
                nodes.append(n)
                n.start(timeout=90)
                assert n.runtime_uuid() == realm.runtime(name)
            def alive() -> int:
                return sum(orch.get_status(f"/api/runtimes/{rt}/")[1].get("status") == "A" for rt in (rt_a, rt_b))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and alive() < 2:
                time.sleep(0.2)
            assert alive() == 2, orch.log()[-3000:]
            assert cli.connect_rc() == 0 and a.connect_rc() == 0
            assert cli.subscribe_rc(f"{R}/proc/#") == 1
            a.subscribe_rc(f"{R}/proc/control/{rt_b}")  # granted by mosquitto, but nothing is delivered
            # legitimate: the CLI asks the orchestrator, which creates on nb; stdout and exited come back
            good = str(_uuid.uuid4())
            assert cli.publish_rc(f"{R}/proc/control", _create(good, rt_b)) == 0
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(t == f"{R}/proc/stdio/{good}" for t, _ in cli.messages):
                time.sleep(0.1)
            assert b"Hello, World!" in b"".join(p for t, p in cli.messages if t == f"{R}/proc/stdio/{good}")
            # node na cannot create a module on nb, nor ask the orchestrator, nor register for nb
            bad = [str(_uuid.uuid4()) for _ in range(3)]
            assert a.publish_rc(f"{R}/proc/control/{rt_b}", _create(bad[0], rt_b)) == NOT_AUTHORIZED
            assert a.publish_rc(f"{R}/proc/control", _create(bad[1], rt_b)) == NOT_AUTHORIZED
            assert a.publish_rc(f"{R}/proc/reg/{rt_b}", {"action": "delete"}) == NOT_AUTHORIZED
            assert any(t == f"{R}/proc/control/{rt_b}" for t, _ in cli.messages)
            assert not any(t == f"{R}/proc/control/{rt_b}" for t, _ in a.messages)  # nb's creates stay hidden from na
            # ... but may use its own topics and the application channels
            assert a.publish_rc(f"{R}/proc/keepalive/{rt_a}", {"action": "keepalive"}) == 0
            assert a.publish_rc("apps/room1", b"hi") < 0x80  # 0x10: accepted, no subscriber
            # anonymous and wrong-password clients get nothing
            anon = AuthClient(broker.port)
            assert anon.connect_rc() != 0
            anon.close()
            wrong = AuthClient(broker.port, "na", "guess")
            assert wrong.connect_rc() != 0
            wrong.close()
            # fence: a legitimate create after the refused ones; had one of them got through, the
            # orchestrator would have sent its create on before this one's
            fence = str(_uuid.uuid4())
            assert cli.publish_rc(f"{R}/proc/control", _create(fence, rt_b)) == 0
            wait_until(lambda: any(t == f"{R}/proc/control/{rt_b}" and fence.encode() in p for t, p in list(cli.messages)), 60,
                       "the fence create sent on to nb")
            for u in bad:
                assert not any(u in t or u.encode() in p for t, p in cli.messages), u
        finally:
            a.close()
            cli.close()
            for n in nodes:
                n.stop()
            orch.stop()


def test_acl_help_example_runs(tmp_path: Any) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "dev1.json").write_text(json.dumps({"manager": str(_uuid.uuid4()), "runtimes": {"dev1": str(_uuid.uuid4())}}))
    r = subprocess.run([os.path.join(os.path.dirname(__file__), "..", "..", ".venv", "bin", "python"), "manage.py", "acl",
                        "-o", str(tmp_path / "acl"), "--realm", "lab", "--channel", "lab/apps/#", str(state / "dev1.json")],
                       capture_output=True, text=True, cwd=os.path.join(os.path.dirname(__file__), "..", ".."), timeout=60)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "acl" / "mosquitto.acl").read_text()
    assert "user dev1" in text and "topic readwrite lab/apps/#" in text and "topic write lab/proc/control" in text


@pytest.mark.parametrize("user", ["a b", "x:y", "#"])
def test_unusable_account_names_are_refused(tmp_path: Any, user: str, capsys: Any) -> None:
    st = tmp_path / "n.json"
    st.write_text(json.dumps({"manager": str(_uuid.uuid4()), "runtimes": {"n": str(_uuid.uuid4())}}))
    assert acl.main(["-o", str(tmp_path / "o"), "--cli-user", user, str(st)]) == 1
    assert "--cli-user" in capsys.readouterr().err and not (tmp_path / "o").exists()
