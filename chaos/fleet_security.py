"""Scenario 10 (issue #25): a fleet under `manage.py acl`, attacked by a hostile account.

Set-up: identity files and `manage.py acl` for nodes `na`, `nb` (running, `linux` runtime) and `hx`, `hy`
(node accounts of the same realm, no node running: the attacker holds their passwords); mosquitto with
the generated files; the orchestrator with `--identities` and a REST token. A legitimate module runs on
`nb` (created by the `cli` account through the orchestrator, with an `env` secret), then every attack of
the issue is tried by name. Each counts as tried, and as refused or succeeded; the promise is 0
succeeded, with the legitimate traffic still working (a fence create after the attacks runs on nb).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid as _uuid
from typing import Any, Callable

from chaos.base import REALM, Outcome, Size, wait_until
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc

P = f"{REALM}/proc"
SECRET = "API_TOKEN=s3cr3t-value-25"


def _create(u: str, parent: str, file: str = "helloworld.wasm", **args: Any) -> dict[str, Any]:
    return {"object_id": str(_uuid.uuid4()), "action": "create", "type": "req",
            "data": {"type": "module", "uuid": u, "name": f"m-{u[:8]}", "parent": parent, "file": file, "args": args}}


def _msg(action: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"object_id": str(_uuid.uuid4()), "action": action, "type": "req", "data": data}


def _http(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


class Attacks:
    """Each attack by name: `refused` or `succeeded`; `tried` in order."""

    def __init__(self, out: Outcome) -> None:
        self.out = out
        self.result: dict[str, str] = {}

    def attempt(self, name: str, refused: Callable[[], bool]) -> None:
        try:
            ok = bool(refused())
        except Exception as e:  # an attack whose check broke counts as succeeded: nobody showed it was refused
            self.out.fail(f"{name}: the check failed: {type(e).__name__}: {e}")
            ok = False
        self.result[name] = "refused" if ok else "succeeded"
        if not ok:
            self.out.fail(f"attack {name} succeeded")


def run(size: Size) -> Outcome:
    from cli import acl
    from testbed.acl import NOT_AUTHORIZED, AclRealm, AuthClient

    out = Outcome("fleet_security")
    tmp = tempfile.mkdtemp(prefix="sl-chaos-fsec-")
    atk = Attacks(out)
    t_start = time.monotonic()
    try:
        realm = AclRealm(tmp, {"na": ["na"], "nb": ["nb"], "hx": ["hx"], "hy": ["hy"]})
        rt_b, rt_x = realm.runtime("nb"), realm.runtime("hx")
        mgr_b = realm.identities["nb"]["manager"]
        token = os.path.join(tmp, "rest.token")
        with open(token, "w") as f:
            f.write("t" * 32 + "\n")
        with realm.broker() as broker:
            orch = OrchestratorProc(broker.port, tmp, extra_args=["--identities", os.path.join(realm.out, "identities.json"),
                                                                   "--token-file", token])
            orch.token = "t" * 32
            realm.config("orchestrator", broker.port, orch.config, realm=REALM, http="127.0.0.1", http_port=orch.http_port)
            nodes: list[NodeProcess] = []
            clients: list[AuthClient] = []
            try:
                orch.start()
                for name in ("na", "nb"):
                    n = NodeProcess(broker.port, name=name, runtimes=["linux"], state_dir=realm.state, reg_timeout=1,
                                    log_level="INF", extra_args=["-c", realm.config(name, broker.port, os.path.join(tmp, f"{name}.json"))],
                                    watch_auth=("collector", realm.password("collector")))
                    nodes.append(n)
                    n.start(timeout=90)
                cli = AuthClient(broker.port, "cli", realm.password("cli"))
                hx = AuthClient(broker.port, "hx", realm.password("hx"))
                clients += [cli, hx]
                for c in (cli, hx):
                    out.check(c.connect_rc() == 0, "an account of the realm could not connect")
                cli.subscribe_rc(f"{P}/#")
                for t in (f"{P}/#", f"{P}/stdio/#", f"{P}/control/{rt_b}"):
                    hx.subscribe_rc(t)  # mosquitto grants the filter, then delivers only what hx may read

                def ran(u: str, timeout: float = 60) -> bool:
                    try:
                        wait_until(lambda: any(t == f"{P}/control/{rt_b}" and b'"exited"' in p and u.encode() in p
                                               for t, p in list(cli.messages)), timeout, f"module {u} exited on nb")
                        return True
                    except TimeoutError:
                        return False

                # legitimate: a module on nb with a secret in its env, its stdout on nb's own stdio topic
                good = str(_uuid.uuid4())
                out.check(cli.publish_rc(f"{P}/control", _create(good, "nb", env=[SECRET])) < 0x80, "the CLI's create was refused")
                out.check(ran(good), "the legitimate module did not run on nb")
                stdout = b"".join(p for t, p in list(cli.messages) if t == f"{P}/stdio/{rt_b}/{good}")
                out.check(b"Hello, World!" in stdout, f"no stdout on nb's stdio topic: {stdout[:200]!r}")
                held = str(_uuid.uuid4())  # a module that keeps running (for forged exited and stdin)
                cli.publish_rc(f"{P}/control", _create(held, "nb", file="loop.wat"))
                wait_until(lambda: any(t == f"{P}/control/{rt_b}" and held.encode() in p for t, p in list(cli.messages)), 60,
                           "the long module sent to nb")

                bad: list[str] = []

                def refused_pub(topic: str, payload: Any, client: AuthClient = hx) -> bool:
                    return client.publish_rc(topic, payload) == NOT_AUTHORIZED

                def create_on_nb() -> bool:
                    u = str(_uuid.uuid4())
                    bad.append(u)
                    return refused_pub(f"{P}/control/{rt_b}", _create(u, rt_b))
                atk.attempt("create_on_another_node", create_on_nb)

                def ask_orchestrator() -> bool:
                    u = str(_uuid.uuid4())
                    bad.append(u)
                    return refused_pub(f"{P}/control", _create(u, "nb"))
                atk.attempt("create_through_the_orchestrator", ask_orchestrator)
                atk.attempt("forged_manager_delete", lambda: refused_pub(
                    f"{P}/reg/{mgr_b}", _msg("delete", {"type": "manager", "uuid": mgr_b, "name": "nb"})))
                atk.attempt("forged_runtime_delete", lambda: refused_pub(
                    f"{P}/reg/{rt_b}", _msg("delete", {"type": "runtime", "uuid": rt_b, "name": "nb"})))
                atk.attempt("squat_a_runtime_uuid", lambda: refused_pub(
                    f"{P}/reg/{rt_b}", _msg("create", {"type": "runtime", "uuid": rt_b, "name": "nb", "max_nmodules": 9})))

                def retained_create() -> bool:
                    u = str(_uuid.uuid4())
                    bad.append(u)
                    info = hx.c.publish(f"{P}/control/{rt_b}", json.dumps(_create(u, rt_b)), qos=1, retain=True)
                    return hx._wait_ack(info.mid, 10) == NOT_AUTHORIZED
                atk.attempt("retained_create", retained_create)

                def squat_name() -> bool:  # hx registers its own runtime uuid under nb's name
                    hx.publish_rc(f"{P}/reg/{rt_x}", _msg("create", {"type": "runtime", "uuid": rt_x, "name": "nb", "max_nmodules": 9,
                                                                     "metadata": {"host": "evil", "pid": 1}}))
                    reply = wait_until(lambda: next((json.loads(p) for t, p in list(hx.messages) if t == f"{P}/reg/{rt_x}"
                                                     and b'"resp"' in p), None), 30, "the orchestrator's answer to the squat")
                    return bool(reply["data"]["result"] == "error")
                atk.attempt("squat_a_runtime_name", squat_name)
                atk.attempt("feed_another_nodes_stdin", lambda: refused_pub(f"{P}/stdio/{rt_b}/{held}", b"input\n"))
                atk.attempt("write_the_shared_stdio_topic", lambda: refused_pub(f"{P}/stdio/{held}", b"input\n"))

                def forged_exited() -> bool:  # on its own control topic (allowed by the broker) for nb's module
                    hx.publish_rc(f"{P}/control/{rt_x}", _msg("exited", {"type": "module", "uuid": held, "status": {"reason": "exited"}}))
                    wait_until(lambda: any(t == f"{P}/log" and held.encode() in p and b"runs on" in p for t, p in list(cli.messages)),
                               30, "the orchestrator's refusal of the forged exited")
                    code, body = _http(f"{orch.url}/api/modules/{held}/", {"Authorization": "Bearer " + "t" * 32})
                    return code == 200 and json.loads(body).get("status") == "A"
                atk.attempt("forged_exited", forged_exited)

                def forged_profile() -> bool:
                    hx.publish_rc(f"{P}/profile/benchmarking-v3/{rt_x}/{held}", b"{}")
                    wait_until(lambda: any(t == f"{P}/log" and b"profile of module" in p and held.encode() in p
                                           for t, p in list(cli.messages)), 30, "the orchestrator's refusal of the forged profile")
                    return True
                atk.attempt("forged_profile", forged_profile)

                def module_reads_secrets() -> bool:  # a create that points a module at the password files
                    u1, u2 = str(_uuid.uuid4()), str(_uuid.uuid4())
                    pw_dir = os.path.dirname(realm.password_file("nb"))
                    cli.publish_rc(f"{P}/control", _create(u1, "nb", file="readfile.wasm", argv=[realm.password_file("nb")], dirs=[pw_dir]))
                    cli.publish_rc(f"{P}/control", _create(u2, "nb", file=realm.password_file("nb")))
                    ok = ran(u1) and ran(u2)
                    leaked = realm.password("nb").encode() in b"".join(p for _, p in list(cli.messages))
                    return ok and not leaked
                atk.attempt("module_reads_the_node_password", module_reads_secrets)

                def rest_without_token() -> bool:
                    return _http(f"{orch.url}/api/modules/{good}/", {})[0] == 401
                atk.attempt("rest_without_token", rest_without_token)

                def rest_rebound_host() -> bool:
                    return _http(f"{orch.url}/api/modules/{good}/", {"Host": "attacker.example", "Authorization": "Bearer " + "t" * 32})[0] == 403
                atk.attempt("rest_dns_rebinding", rest_rebound_host)

                def rest_env() -> bool:
                    code, body = _http(f"{orch.url}/api/modules/{good}/?all", {"Authorization": "Bearer " + "t" * 32})
                    return code == 200 and b"s3cr3t" not in body and b"API_TOKEN=(redacted)" in body
                atk.attempt("rest_env_values", rest_env)

                def acl_shared_uuid() -> bool:
                    dup = os.path.join(tmp, "dup", "twin.json")
                    os.makedirs(os.path.dirname(dup))
                    with open(dup, "w") as f:
                        json.dump({"manager": str(_uuid.uuid4()), "runtimes": {"twin": rt_b}}, f)
                    return acl.main(["-o", os.path.join(tmp, "acl2"), os.path.join(realm.state, "nb.json"), dup]) != 0
                atk.attempt("acl_uuid_of_two_accounts", acl_shared_uuid)

                def acl_out_in_root() -> bool:
                    root = os.path.join(tmp, "mods")
                    os.makedirs(root)
                    return acl.main(["-o", os.path.join(root, "acl"), "--module-root", root, os.path.join(realm.state, "nb.json")]) != 0
                atk.attempt("acl_passwords_in_a_module_root", acl_out_in_root)

                def connect(user: str | None, pw: str | None) -> bool:
                    c = AuthClient(broker.port, user, pw)
                    try:
                        return c.connect_rc() != 0
                    finally:
                        c.close()
                atk.attempt("anonymous_client", lambda: connect(None, None))
                atk.attempt("wrong_password", lambda: connect("nb", "guess"))

                def kick(client_id: str, held_on: Callable[[], bool]) -> Callable[[], bool]:
                    def go() -> bool:  # hy connects with the victim's client id; the fence below (sessions_held) decides too
                        c = AuthClient(broker.port, "hy", realm.password("hy"), client_id=client_id)
                        try:
                            accepted = c.connect_rc() == 0
                        finally:
                            c.close()
                        return accepted and held_on()
                    return go
                key = orch.db  # the client id the orchestrator asks for (service.py), and the account names
                import hashlib
                orch_id = "orchestrator-" + hashlib.sha1(f"{REALM}\0{os.path.abspath(key)}".encode()).hexdigest()[:12]
                atk.attempt("take_over_the_orchestrators_session", kick(orch_id, lambda: "disconnected from broker" not in orch.log()))
                atk.attempt("take_over_the_orchestrator_accounts_id", kick("orchestrator", lambda: "disconnected from broker" not in orch.log()))
                atk.attempt("take_over_a_nodes_session", kick("nb", lambda: "disconnected from MQTT broker" not in nodes[1].output()))

                # the fence: legitimate work still flows, nothing refused reached anyone, nobody was kicked
                fence = str(_uuid.uuid4())
                out.check(cli.publish_rc(f"{P}/control", _create(fence, "nb")) < 0x80 and ran(fence), "the fence module did not run on nb")
                seen = list(cli.messages)
                fences = {"refused_creates_reached_nobody": not any(u.encode() in p for u in bad for _, p in seen)}
                # what hx received of nb's: its own publishes (on its own runtime's topics) echo back, nothing else
                leaks = [t for t, p in list(hx.messages) if rt_x not in t and (f"/{rt_b}" in t or held.encode() in p or good.encode() in p)]
                out.figures["hostile_received"] = sorted({t.replace(rt_x, "HX") for t, _ in list(hx.messages)})
                atk.attempt("read_another_nodes_stdio_or_control", lambda: not leaks)
                fences["sessions_held"] = "disconnected from broker" not in orch.log() and all(
                    "disconnected from MQTT broker" not in n.output() for n in nodes)
                fences["nodes_alive"] = all(n.proc is not None and n.proc.poll() is None for n in nodes)
                out.figures["fence_checks"] = fences
                for what, ok in fences.items():
                    out.check(ok, f"fence check {what} failed")
            finally:
                for c in clients:
                    c.close()
                for n in nodes:
                    n.stop()
                orch.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tried = len(atk.result)
    refused = sum(v == "refused" for v in atk.result.values())
    out.figures.update({"attacks_tried": tried, "attacks_refused": refused, "attacks_succeeded": tried - refused,
                        "attacks": atk.result, "seconds": round(time.monotonic() - t_start, 1)})
    out.check(tried >= 20, f"only {tried} attacks tried")
    out.check("fence_checks" in out.figures, "the scenario did not reach its fence")
    return out
