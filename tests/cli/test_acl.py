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


def test_a_uuid_of_two_nodes_is_refused(tmp_path: Any, capsys: Any) -> None:
    shared = str(_uuid.uuid4())
    (tmp_path / "n1.json").write_text(json.dumps({"manager": str(_uuid.uuid4()), "runtimes": {"n1": shared}}))
    (tmp_path / "n2.json").write_text(json.dumps({"manager": str(_uuid.uuid4()), "runtimes": {"n2": shared}}))
    assert acl.main(["-o", str(tmp_path / "o"), str(tmp_path / "n1.json"), str(tmp_path / "n2.json")]) == 1
    err = capsys.readouterr().err
    assert shared in err and "'n1'" in err and "'n2'" in err and not (tmp_path / "o").exists()


def test_out_inside_a_module_root_is_refused(tmp_path: Any, capsys: Any) -> None:
    st = tmp_path / "n.json"
    st.write_text(json.dumps({"manager": str(_uuid.uuid4()), "runtimes": {"n": str(_uuid.uuid4())}}))
    (tmp_path / "mods").mkdir()
    assert acl.main(["-o", str(tmp_path / "mods" / "acl"), "--module-root", str(tmp_path / "mods"), str(st)]) == 1
    assert "module root" in capsys.readouterr().err and not (tmp_path / "mods" / "acl").exists()
    # the default roots: the project's build/modules (never the working directory)
    assert acl.main(["-o", os.path.join(acl.default_roots()[0], "acl-test"), str(st)]) == 1
    assert not os.path.exists(os.path.join(acl.default_roots()[0], "acl-test"))
    assert acl.main(["-o", str(tmp_path / "acl"), "--module-root", str(tmp_path / "mods"), str(st)]) == 0
    conf = (tmp_path / "acl" / "mosquitto-auth.conf").read_text()
    assert "use_username_as_clientid true" in conf
    ids = json.loads((tmp_path / "acl" / "identities.json").read_text())
    assert {v["name"] for v in ids.values()} == {"n"}


def test_a_realm_under_its_acl(tmp_path: Any) -> None:
    # nc: a node account with no node running, the hostile one
    realm = AclRealm(str(tmp_path), {"na": ["na"], "nb": ["nb"], "nc": ["nc"]}, channels=["apps/#"])
    # the files: hashed passwords only, secrets 0600, re-running keeps the passwords
    passwd = (tmp_path / "acl" / "mosquitto.passwd").read_text()
    assert "cli:$7$" in passwd and realm.password("cli") not in passwd
    assert os.stat(realm.password_file("na")).st_mode & 0o077 == 0
    before = realm.password("na")
    assert acl.main(["-o", realm.out, "--channel", "apps/#", os.path.join(realm.state, "na.json"),
                     os.path.join(realm.state, "nb.json"), os.path.join(realm.state, "nc.json")]) == 0
    assert realm.password("na") == before
    rt_a, rt_b, rt_c = realm.runtime("na"), realm.runtime("nb"), realm.runtime("nc")
    with realm.broker() as broker:
        orch = OrchestratorProc(broker.port, str(tmp_path))
        realm.config("orchestrator", broker.port, orch.config, realm=R, http="127.0.0.1", http_port=orch.http_port)
        orch.start()
        nodes = []
        cli = AuthClient(broker.port, "cli", realm.password("cli"))
        # the hostile account takes the orchestrator's client id: bound to its account, it kicks nobody
        a = AuthClient(broker.port, "nc", realm.password("nc"), client_id=orch_client_id(orch.db))
        try:
            for name in ("na", "nb"):
                cfg = realm.config(name, broker.port, str(tmp_path / f"{name}.json"))
                n = NodeProcess(broker.port, name=name, runtimes=["linux"], state_dir=realm.state, reg_timeout=5,
                                extra_args=["-c", cfg], watch_auth=("collector", realm.password("collector")))
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
            a.subscribe_rc(f"{R}/proc/stdio/#")  # nor of the other nodes' module stdio
            # legitimate: the CLI asks the orchestrator, which creates on nb; stdout (per node) and exited come back
            good = str(_uuid.uuid4())
            stdio = f"{R}/proc/stdio/{rt_b}/{good}"
            assert cli.publish_rc(f"{R}/proc/control", _create(good, rt_b)) == 0
            wait_until(lambda: any(t == stdio for t, _ in list(cli.messages)), 60, "the module's stdout")
            wait_until(lambda: b"Hello, World!" in b"".join(p for t, p in list(cli.messages) if t == stdio), 30, "Hello, World!")
            # the orchestrator keeps the output tail of per-node stdio too (history.py), and never shows env values
            wait_until(lambda: "Hello, World!" in json.dumps(orch.get_status(f"/api/logs/{good}/")[1]), 30, "the output tail")
            # a node account cannot feed nb's modules, nor take nb's stdio topic over
            assert a.publish_rc(stdio, b"input\n") == NOT_AUTHORIZED
            assert a.publish_rc(f"{R}/proc/stdio/{good}", b"x") == NOT_AUTHORIZED
            assert a.publish_rc(f"{R}/proc/stdio/{rt_c}/{good}", b"own") < 0x80
            # node nc cannot create a module on nb, nor ask the orchestrator, nor register for nb
            bad = [str(_uuid.uuid4()) for _ in range(3)]
            assert a.publish_rc(f"{R}/proc/control/{rt_b}", _create(bad[0], rt_b)) == NOT_AUTHORIZED
            assert a.publish_rc(f"{R}/proc/control", _create(bad[1], rt_b)) == NOT_AUTHORIZED
            assert a.publish_rc(f"{R}/proc/reg/{rt_b}", {"action": "delete"}) == NOT_AUTHORIZED
            assert any(t == f"{R}/proc/control/{rt_b}" for t, _ in cli.messages)
            assert not any(t == f"{R}/proc/control/{rt_b}" for t, _ in a.messages)  # nb's creates stay hidden from na
            # ... but may use its own topics and the application channels
            assert a.publish_rc(f"{R}/proc/keepalive/{rt_c}", {"action": "keepalive"}) < 0x80
            assert a.publish_rc("apps/room1", b"hi") < 0x80  # 0x10: accepted, no subscriber
            # anonymous and wrong-password clients get nothing
            anon = AuthClient(broker.port)
            assert anon.connect_rc() != 0
            anon.close()
            wrong = AuthClient(broker.port, "nc", "guess")
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
            assert not any("/stdio/" in t and rt_c not in t for t, _ in a.messages), a.messages[:3]
            # nobody was kicked: the orchestrator's and the nodes' sessions held all along
            assert "disconnected from broker" not in orch.log(), orch.log()[-2000:]
            for n in nodes:
                assert "disconnected from MQTT broker" not in n.output(), n.output()[-2000:]
        finally:
            a.close()
            cli.close()
            for n in nodes:
                n.stop()
            orch.stop()


def orch_client_id(db: str) -> str:
    """The client id the orchestrator asks for (service.py: `orchestrator-` + a hash of realm and store)."""
    import hashlib
    return "orchestrator-" + hashlib.sha1(f"{R}\0{os.path.abspath(db)}".encode()).hexdigest()[:12]


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
