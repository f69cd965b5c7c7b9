"""Scenario 7: the node against a locked-down broker (TLS listener + password file).

The scenario makes its own CA and server certificate (openssl CLI, for 127.0.0.1 and
localhost) and a mosquitto password file (mosquitto_passwd), and runs mosquitto with only a TLS
listener, `allow_anonymous false`. Then:
- a node with `use_ssl`, the CA, `mqtt_username` and `pwd` registers (seen by a TLS client);
- a node with a wrong password, one with an unknown user, and one without TLS each log a clear
  error, keep retrying (several attempts seen) and keep running; the wrong-password node
  registers once its password file is corrected, without a restart (the file is re-read? if
  not, the figure says so), and none of them crash.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

from chaos.base import REALM, Inbox, Outcome, Size, Watch, js, wait_until
from testbed.broker import Mosquitto
from testbed.node import NodeProcess

USER, PASSWORD = "node1", "s3cret-pass"


def make_certs(d: str) -> dict[str, str]:
    """CA + server certificate for 127.0.0.1/localhost, with the openssl command line."""
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, csr, crt = os.path.join(d, "server.key"), os.path.join(d, "server.csr"), os.path.join(d, "server.crt")
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*a: str) -> None:
        subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=chaos-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    return {"ca": ca_crt, "cert": crt, "key": key}


def tls_broker(d: str, certs: dict[str, str]) -> Mosquitto:
    passwd = os.path.join(d, "passwd")
    subprocess.run(["mosquitto_passwd", "-b", "-c", passwd, USER, PASSWORD], check=True, capture_output=True, timeout=30)
    os.chmod(passwd, 0o600)
    b = Mosquitto()
    with open(b.conf) as f:
        conf = f.read().replace("allow_anonymous true", "allow_anonymous false")
    conf = conf.replace(f"listener {b.port} 127.0.0.1", f"listener {b.port} 127.0.0.1\ncafile {certs['ca']}\n"
                        f"certfile {certs['cert']}\nkeyfile {certs['key']}\npassword_file {passwd}")
    with open(b.conf, "w") as f:
        f.write(conf)
    return b


def node_config(d: str, name: str, port: int, ca: str | None, user: str | None, password: str | None) -> str:
    cfg: dict[str, object] = {"mqtt": "127.0.0.1", "mqtt_port": port, "realm": REALM}
    if ca:
        cfg.update({"use_ssl": True, "ssl_ca": ca})
    if user:
        cfg["mqtt_username"] = user
    if password is not None:
        pwd = os.path.join(d, f"{name}.pwd")
        with open(pwd, "w") as f:
            f.write(password + "\n")
        os.chmod(pwd, 0o600)
        cfg["pwd"] = pwd
    path = os.path.join(d, f"{name}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def run(size: Size) -> Outcome:
    out = Outcome("security")
    for tool in ("openssl", "mosquitto_passwd"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/bin/{tool}"):
            out.fail(f"{tool} is not installed (apt-get install openssl mosquitto)")
            return out
    d = tempfile.mkdtemp(prefix="sl-chaos-tls-")
    figures: dict[str, object] = {}
    crashes = 0
    try:
        certs = make_certs(d)
        broker = tls_broker(d, certs).start()
        try:
            inbox = Inbox()
            watch = Watch(broker.port, inbox, [(f"{REALM}/proc/reg/#", 1)], tls={"ca_certs": certs["ca"]}, auth=(USER, PASSWORD))
            nodes: list[NodeProcess] = []
            try:
                good = NodeProcess(broker.port, name="tlsgood", runtimes=["test/reg"], reg_timeout=0.3,
                                   extra_args=["-c", node_config(d, "tlsgood", broker.port, certs["ca"], USER, PASSWORD)])
                nodes.append(good)
                t0 = time.monotonic()
                good.start(wait=False)
                try:
                    wait_until(lambda: inbox.find(lambda t, p: js(p).get("action") == "create" and (js(p).get("data") or {}).get("name") == "tlsgood"),
                               30, "the TLS + password node registers")
                    figures["tls_password_register_s"] = round(time.monotonic() - t0, 2)
                except TimeoutError as e:
                    out.fail(f"{e}: {good.output()[-600:]}")
                bad_cases = {
                    "wrong_password": (certs["ca"], USER, "wrong"),
                    "unknown_user": (certs["ca"], "intruder", PASSWORD),
                    "no_tls": (None, USER, PASSWORD),
                    "no_credentials": (certs["ca"], None, None),
                }
                bad_nodes = {}
                for case, (ca, user, pw) in bad_cases.items():
                    n = NodeProcess(broker.port, name=f"sec-{case}", runtimes=["test/reg"], reg_timeout=0.3,
                                    extra_args=["-c", node_config(d, case, broker.port, ca, user, pw)])
                    nodes.append(n)
                    n.start(wait=False)
                    bad_nodes[case] = n
                # reconnect backoff 0.5, 1, 2 s: each refused node retries; wait for its second retry (or its
                # exit) instead of a fixed 4 s, which a busy machine spends starting the node
                t_bad = time.monotonic()
                for n in bad_nodes.values():
                    try:
                        wait_until(lambda: n.output().count("retrying in") >= 2 or (n.proc is not None and n.proc.poll() is not None),
                                   60, "a refused node retries twice or exits")
                    except TimeoutError:
                        pass  # judged below, with the node's output
                figures["bad_nodes_two_retries_s"] = round(time.monotonic() - t_bad, 2)
                for case, n in bad_nodes.items():
                    text = n.output()
                    attempts = text.count("retrying in")
                    running = n.proc is not None and n.proc.poll() is None
                    registered = bool(inbox.find(lambda t, p: (js(p).get("data") or {}).get("name") == f"sec-{case}"))
                    errors = [l for l in text.splitlines() if "[mq:ERR]" in l]
                    figures[f"{case}.retries"] = attempts
                    figures[f"{case}.error"] = errors[0].split("] ", 2)[-1][:160] if errors else None
                    if not running:
                        crashes += 1
                        out.fail(f"{case}: the node exited ({n.proc.returncode if n.proc else None}): {text[-400:]}")
                    out.check(not registered, f"{case}: the node got onto the secured broker")
                    out.check(attempts >= 2, f"{case}: {attempts} connection attempts (want retries)")
                    clear = bool(errors) and any(w in errors[0].lower() for w in ("refused", "not authorized", "bad user", "ssl", "tls", "certificate", "connection"))
                    out.check(clear, f"{case}: no clear error in the log: {errors[:1]}")
                # the wrong password corrected in its file: does the running node get in?
                with open(os.path.join(d, "wrong_password.pwd"), "w") as f:
                    f.write(PASSWORD + "\n")
                try:
                    wait_until(lambda: inbox.find(lambda t, p: (js(p).get("data") or {}).get("name") == "sec-wrong_password"), 10,
                               "the node with the corrected password file registers")
                    figures["password_fixed_without_restart"] = True
                except TimeoutError:
                    figures["password_fixed_without_restart"] = False
            finally:
                for n in nodes:
                    n.stop()
                watch.close()
        finally:
            broker.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    figures["crashes"] = crashes
    out.figures.update(figures)
    return out
