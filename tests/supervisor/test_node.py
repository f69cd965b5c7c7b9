"""The supervisor end to end: a real mosquitto, `start.py` as a subprocess, real forked workers
running the Python test runtimes (runtimes/testing.py)."""
from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from testbed.control import create, delete, exited, js
from testbed.mqtt import MqttProbe, Received
from testbed.node import NodeProcess
from testbed.wait import wait_until

REALM = "realm"
FAST = 0.3  # registration timeout: no orchestrator in these tests


def errors(probe: MqttProbe, text: str, timeout: float = 10.0) -> list[Received]:
    return probe.wait_for(f"{REALM}/proc/log", lambda m: text in js(m)["data"]["error"], timeout=timeout)


def ipc_objects(pid: int) -> list[str]:
    out = []
    for d in ("/dev/mqueue", "/dev/shm"):
        try:
            out += [n for n in os.listdir(d) if n.startswith(f"sl.{pid}.") or n.startswith(f"sl.{pid}-")]
        except FileNotFoundError:
            pass
    return out


def node(broker: Any, **kw: Any) -> NodeProcess:
    kw.setdefault("reg_timeout", FAST)
    return NodeProcess(broker.port, **kw)


# --------------------------------------------------------------------------- registration


def test_registration_payloads_follow_protocol(broker: Any, probe: MqttProbe) -> None:
    probe.subscribe(f"{REALM}/proc/reg/#")
    with node(broker, name="regnode", runtimes=["test/echo", "test/reg"], extra_args=["-g", "0"]) as n:
        man = probe.wait_for(f"{REALM}/proc/reg/{n.manager_uuid}")[0]
        m = man.json()
        assert set(m) == {"object_id", "action", "type", "data"}
        assert m["action"] == "create" and m["type"] == "req"
        # ours: the sender's process (the orchestrator refuses an identity alive under two)
        assert m["data"] == {"type": "manager", "uuid": n.manager_uuid, "name": "regnode",
                             "metadata": {"host": socket.gethostname(), "pid": n.pid}}
        assert set(n.runtime_uuids) == {"regnode.echo", "regnode.reg"}
        rt = probe.wait_for(f"{REALM}/proc/reg/{n.runtime_uuid('regnode.echo')}")[0].json()
        d = rt["data"]
        assert rt["action"] == "create" and rt["type"] == "req"
        assert set(d) == {"type", "uuid", "name", "runtime_type", "max_nmodules", "apis", "platform", "metadata", "parent"}
        assert d["type"] == "runtime" and d["parent"] == n.manager_uuid and d["name"] == "regnode.echo"
        assert d["max_nmodules"] == 128 and d["apis"] == ["channels", "loopback"] and isinstance(d["platform"], dict)
        assert d["metadata"]["cpus"] == [0] and d["metadata"]["runtime"] == "test/echo"
        # registration waits for the orchestrator's answer: answer it (as the orchestrator would)
        assert n.stop() == 0
    deletes = [x.json() for x in probe.messages(f"{REALM}/proc/reg/#") if x.json()["action"] == "delete"]
    assert [x["data"]["type"] for x in deletes] == ["runtime", "runtime", "manager"]  # and no last will


def test_orchestrator_reply_sets_keepalive_interval(broker: Any, probe: MqttProbe) -> None:
    """An orchestrator answer with ka_interval_sec=1 makes keepalives flow every second."""
    replier = MqttProbe(broker.port)
    replier.client.on_message = lambda c, u, msg: _answer(replier, msg)
    replier.subscribe(f"{REALM}/proc/reg/#")  # returns on the broker's SUBACK
    probe.subscribe(f"{REALM}/proc/keepalive/#")
    try:
        with node(broker, name="kanode", runtimes=["test/echo"], reg_timeout=5.0) as n:
            rt = n.runtime_uuid()
            create(probe, rt, "k1")
            kas = probe.wait_for(f"{REALM}/proc/keepalive/{rt}", lambda m: any(c["uuid"] == "k1" for c in m.json()["data"]["children"]), timeout=10)
            d = kas[0].json()["data"]
            assert kas[0].json()["action"] == "update"
            assert d["type"] == "runtime" and d["uuid"] == rt and d["name"] == "kanode" and d["apis"] == ["channels", "loopback"]
            assert "registered runtime kanode" in n.output()
    finally:
        replier.close()


def _answer(p: MqttProbe, msg: Any) -> None:
    m = orjson.loads(msg.payload)
    if m.get("type") == "req" and m.get("action") == "create":
        p.client.publish(msg.topic, orjson.dumps({"object_id": m["object_id"], "type": "resp", "action": "create",
                                                  "data": {"result": "ok", "details": {"ka_interval_sec": 1}}}), qos=1)


def test_last_will_after_sigkill_and_workers_die_with_supervisor(broker: Any, probe: MqttProbe) -> None:
    probe.subscribe(f"{REALM}/proc/reg/#", qos=2)
    n = node(broker, name="willnode", runtimes=["test/echo", "test/reg"])
    try:
        n.start()
        workers = n.worker_pids()
        assert len(workers) == 2
        n.kill()
        # a SIGKILLed supervisor cannot unlink its IPC objects: the next one does (here: us, at once,
        # so that concurrent test runs never see them)
        from ipc import cleanup_stale

        cleanup_stale()
        will = probe.wait_for(f"{REALM}/proc/reg/{n.manager_uuid}", lambda m: m.json()["action"] == "delete", timeout=15)[0]
        assert will.json()["data"] == {"type": "manager", "uuid": n.manager_uuid, "name": "willnode", "last_will": True,
                                       "metadata": {"host": socket.gethostname(), "pid": n.pid}}
        for pid in workers:  # PR_SET_PDEATHSIG
            wait_until(lambda: not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", 10, f"worker {pid} gone")
    finally:
        n.stop()
        from ipc import cleanup_stale

        cleanup_stale()


# --------------------------------------------------------------------------- modules


def test_create_delete_routed_and_exited_published(broker: Any, probe: MqttProbe) -> None:
    probe.subscribe(f"{REALM}/proc/#")
    with node(broker, runtimes=["test/echo"]) as n:
        rt = n.runtime_uuid()
        create(probe, rt, "m1")
        create(probe, rt, "m2", argv=["!exit", "7"])
        st = exited(probe, rt, "m2")
        assert st["status"] == {"reason": "exited", "code": 7, "error": None}
        assert st["type"] == "module"
        delete(probe, rt, "m1")
        st = exited(probe, rt, "m1")
        assert st["status"] == {"reason": "deleted", "code": None, "error": None}
        create(probe, rt, "m3", argv=["!profile", "abcd"])
        prof = probe.wait_for(f"{REALM}/proc/profile/test/{rt}/m3")[0]
        assert prof.payload == b"abcd"
        create(probe, rt, "m4", argv=["!log", "hello-from-module"])
        wait_until(lambda: "hello-from-module" in n.output(), 10, "module log")
        assert "[rt.testnode:INF] [mod-m4] hello-from-module" in n.output()


def test_malformed_control_messages_error_on_proc_log_and_node_keeps_serving(broker: Any, probe: MqttProbe) -> None:
    probe.subscribe(f"{REALM}/proc/#")
    with node(broker, runtimes=["test/reg"]) as n:
        rt = n.runtime_uuid()
        topic = f"{REALM}/proc/control/{rt}"
        probe.publish(topic, b"{this is not json")
        errors(probe, "malformed JSON")
        probe.publish(topic, {"action": "create", "data": {"type": "module"}})
        errors(probe, "missing key 'data.uuid'")
        probe.publish(topic, {"action": "create", "data": {"uuid": 42}})
        errors(probe, "key 'data.uuid' must be str")
        probe.publish(topic, {"action": "frobnicate", "data": {"uuid": "x"}})
        errors(probe, "key 'action': invalid value 'frobnicate'")
        delete(probe, rt, "never-created")
        errors(probe, "unknown module never-created")
        create(probe, rt, "dup")
        create(probe, rt, "dup")
        errors(probe, "module dup already exists")
        create(probe, rt, "bad-ch", channels=[{"path": "a", "mode": "x", "topic": "b"}])
        errors(probe, "key 'data.channels[0].mode': invalid enum value 'x'")
        # still serving
        delete(probe, rt, "dup")
        assert exited(probe, rt, "dup")["status"]["reason"] == "deleted"
        assert n.proc is not None and n.proc.poll() is None


def test_runtime_full_refuses_beyond_max_nmodules(broker: Any, probe: MqttProbe) -> None:
    probe.subscribe(f"{REALM}/proc/log")
    probe.subscribe(f"{REALM}/proc/control/#")
    with node(broker, runtimes=["test/single"]) as n:
        rt = n.runtime_uuid()
        create(probe, rt, "one")
        create(probe, rt, "two")
        errors(probe, "is full (max_nmodules 1)")
        delete(probe, rt, "one")
        exited(probe, rt, "one")
        create(probe, rt, "two")  # the slot is free again
        delete(probe, rt, "two")
        assert exited(probe, rt, "two")["status"]["reason"] == "deleted"


# --------------------------------------------------------------------------- workers


def test_worker_sigkill_restarts_and_modules_reported_crashed(broker: Any, probe: MqttProbe) -> None:
    probe.subscribe(f"{REALM}/proc/#")
    with node(broker, runtimes=["test/echo"]) as n:
        rt = n.runtime_uuid()
        create(probe, rt, "c1")
        create(probe, rt, "c2", fault_crash="restart", channels=[{"path": "in", "mode": "r", "topic": "fc/in"},
                                                                   {"path": "out", "mode": "w", "topic": "fc/out"}])
        wait_until(lambda: "opened channel 1 on fc/out" in n.output(), 10, "channels of c2 open")
        # a death in STARTING is a failed start, not a crash of a running worker: wait for RUNNING
        wait_until(lambda: "STARTING -> RUNNING" in n.output(), 10, "worker running")
        [pid] = n.worker_pids()
        os.kill(pid, signal.SIGKILL)
        st = exited(probe, rt, "c1")
        assert st["status"]["reason"] == "crashed" and "died" in st["status"]["error"]
        wait_until(lambda: n.worker_pids() and n.worker_pids() != [pid], 15, "worker restarted")
        assert "worker died (exit -9)" in n.output()
        # c2 (fault_crash=restart) was re-created on the new worker: its channels work again
        probe.subscribe("fc/out")
        wait_until(lambda: n.output().count("opened channel 1 on fc/out") >= 2, 15, "c2 re-created")
        probe.publish("fc/in", b"again")
        assert probe.wait_for("fc/out")[0].payload == b"again"
        # crash on demand through a channel message
        probe.publish("fc/in", b"!crash")
        wait_until(lambda: n.output().count("worker died") >= 2, 15, "second crash")


def test_boot_error_is_fatal_at_once(broker: Any, probe: MqttProbe) -> None:
    probe.subscribe(f"{REALM}/proc/#")
    from supervisor.identity import NAMESPACE
    import uuid as _uuid

    mgr = str(_uuid.uuid4())
    bf = str(_uuid.uuid5(NAMESPACE, f"{mgr}/testnode.bootfail"))  # --uuid derives runtime uuids
    with node(broker, runtimes=["test/bootfail", "test/reg"], wait_runtimes=1,
              backoff=0.1, extra_args=["--start-retries", "3", "--uuid", mgr]) as n:
        d = probe.wait_for(f"{REALM}/proc/reg/{bf}", lambda m: m.json()["action"] == "delete", timeout=20)[0].json()
        assert d["data"]["type"] == "runtime" and d["data"]["uuid"] == bf
        errors(probe, "FATAL")
        # the log line comes through the node's stdout pipe, which may lag the MQTT report
        out = wait_until(lambda: "FATAL at once, not restarting" in n.output() and n.output(), 10, "the FATAL log line")
        assert "setup() on purpose" in out  # the worker's own message reached the log
        # FATAL, not BACKOFF: only BACKOFF has a restart timer, and FATAL is left only for STOPPED (states.py)
        assert "STARTING -> FATAL (boot error" in out and "-> BACKOFF" not in out
        # fence: a later create finds it still FATAL, and its refusal is logged after anything a respawn logged
        create(probe, bf, "z1")
        errors(probe, "is FATAL")
        out = wait_until(lambda: "create of module z1" in n.output() and n.output(), 10, "the refusal of z1 in the log")
        assert out.count("worker failed to boot") == 1  # a boot error: FATAL at once, despite --start-retries 3
        assert out.count("worker started") == 2  # one attempt + the healthy test/reg
        # the other runtime is unaffected
        reg = str(_uuid.uuid5(NAMESPACE, f"{mgr}/testnode.reg"))  # start() may have returned on the other one's create
        create(probe, reg, "ok1")
        delete(probe, reg, "ok1")
        assert exited(probe, reg, "ok1")["status"]["reason"] == "deleted"


def test_sigterm_exits_zero_and_leaves_no_ipc_object(broker: Any) -> None:
    n = node(broker, runtimes=["test/echo", "test/reg", "test/exec"])
    try:
        n.start()
        pid = n.pid
        assert len(ipc_objects(pid)) > 0
        workers = n.worker_pids()
        assert len(workers) == 3

        def titled() -> bool:  # an exec'd worker (test/exec) names itself once its interpreter runs worker_main
            titles = [Path(f"/proc/{w}/cmdline").read_text().replace("\0", " ").strip() for w in workers]
            return all(t.startswith("silverline: rt.testnode.") for t in titles)

        wait_until(titled, 20, "every worker named silverline: rt.NAME")
    finally:
        code = n.stop()
    assert code == 0
    assert ipc_objects(pid) == []
    for w in workers:
        assert not os.path.exists(f"/proc/{w}") or Path(f"/proc/{w}/stat").read_text().split()[2] == "Z"


def test_exec_worker_echoes(broker: Any, probe: MqttProbe) -> None:
    probe.subscribe("ex/out")
    with node(broker, runtimes=["test/exec"]) as n:
        rt = n.runtime_uuid()
        create(probe, rt, "e1", channels=[{"path": "in", "mode": "r", "topic": "ex/in"}, {"path": "out", "mode": "w", "topic": "ex/out"}])
        wait_until(lambda: "opened channel 1 on ex/out" in n.output(), 10, "channels open")
        probe.publish("ex/in", b"via-exec")
        assert probe.wait_for("ex/out")[0].payload == b"via-exec"


# --------------------------------------------------------------------------- channels


def test_loopback_reaches_every_other_module_but_not_the_publisher(broker: Any, probe: MqttProbe) -> None:
    """Modules A (runtime 1), C (runtime 1) and B (runtime 2). A publishes on t/x (and reads t/x
    itself); B reads t/+, C reads t/#; both echo what they read to out/B and out/C."""
    probe.subscribe("out/#")
    probe.subscribe("t/#")
    with node(broker, runtimes=["test/echo", "test/echo"]) as n:
        r1, r2 = n.runtime_uuid("testnode.echo"), n.runtime_uuid("testnode.echo2")
        create(probe, r1, "A", channels=[{"path": "in", "mode": "r", "topic": "in/A"}, {"path": "tx", "mode": "rw", "topic": "t/x"}])
        create(probe, r2, "B", prefix="B:", channels=[{"path": "t", "mode": "r", "topic": "t/+"}, {"path": "o", "mode": "w", "topic": "out/B"}])
        create(probe, r1, "C", prefix="C:", channels=[{"path": "t", "mode": "r", "topic": "t/#"}, {"path": "o", "mode": "w", "topic": "out/C"}])
        wait_until(lambda: n.output().count("opened channel 1") >= 3, 10, "channels open")
        probe.publish("in/A", b"ping", qos=0)
        assert probe.wait_for("out/B")[0].payload == b"B:ping"
        assert probe.wait_for("out/C")[0].payload == b"C:ping"
        assert probe.wait_for("t/x")[0].payload == b"ping"
        # fence: a second message through A. Had A got its own publish back (it reads t/x too) it would
        # have echoed "ping" again before it read "pong"; a second copy to B or C would come before theirs
        probe.publish("in/A", b"pong", qos=0)
        probe.wait_for("out/B", lambda m: m.payload == b"B:pong")
        probe.wait_for("out/C", lambda m: m.payload == b"C:pong")
        probe.wait_for("t/x", lambda m: m.payload == b"pong")
        assert [m.payload for m in probe.messages("t/x")] == [b"ping", b"pong"]
        assert len(probe.messages("out/B")) == 2 and len(probe.messages("out/C")) == 2
        # a broker message on t/y reaches B and C (no loopback involved), and nobody else
        probe.publish("t/y", b"ext", qos=0)
        assert probe.wait_for("out/B", lambda m: m.payload == b"B:ext")
        assert probe.wait_for("out/C", lambda m: m.payload == b"C:ext")
        # two levels: C's t/# matches, B's t/+ does not; fence: a later t/y reaches both
        probe.publish("t/y/z", b"deep", qos=0)
        probe.publish("t/y", b"after", qos=0)
        probe.wait_for("out/B", lambda m: m.payload == b"B:after")
        probe.wait_for("out/C", lambda m: m.payload == b"C:after")
        assert b"B:deep" not in [m.payload for m in probe.messages("out/B")]
        assert b"C:deep" in [m.payload for m in probe.messages("out/C")]


def test_channel_refusals_and_sl_rewriting(broker: Any, probe: MqttProbe) -> None:
    probe.subscribe(f"{REALM}/#")
    with node(broker, runtimes=["test/echo"]) as n:
        rt = n.runtime_uuid()
        # not granted; writable wildcard; $SL/ always allowed (echo read on $SL/in -> write $SL/out)
        create(probe, rt, "s1", open=[[0, 1, "secret/topic"], [1, 2, "$SL/wild/#"], [2, 1, "$SL/in"], [3, 2, "$SL/out"]],
               channels=[{"path": "g/", "mode": "w", "topic": "granted/"}])
        errors(probe, "is not granted")
        errors(probe, "wildcard")
        wait_until(lambda: f"opened channel 3 on {REALM}/out/s1" in n.output(), 10, "$SL channel open")
        # the log line comes before the broker has the channel's subscription: a QoS 0 message sent in
        # between is dropped by the broker, so send again until the echo answers
        for _ in range(20):
            probe.publish(f"{REALM}/in/s1", b"sl!", qos=0)
            try:
                assert probe.wait_for(f"{REALM}/out/s1", timeout=0.5)[0].payload == b"sl!"
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError(f"no echo on {REALM}/out/s1")
        # closing the only reader unsubscribes: later messages are not delivered
        probe.publish(f"{REALM}/in/s1", b"!close", qos=0)
        wait_until(lambda: f"unsubscribe {REALM}/in/s1" in n.output(), 10, "unsubscribed")


def test_reconnect_after_broker_restart_resubscribes_and_registers_again(broker: Any) -> None:
    with node(broker, name="rcnode", runtimes=["test/echo"]) as n:
        rt = n.runtime_uuid()
        p1 = MqttProbe(broker.port)
        try:
            create(p1, rt, "r1", channels=[{"path": "in", "mode": "r", "topic": "rc/in"}, {"path": "out", "mode": "w", "topic": "rc/out"}])
            wait_until(lambda: "opened channel 1 on rc/out" in n.output(), 10, "channels open")
        finally:
            p1.close()
        broker.stop()
        wait_until(lambda: "lost MQTT broker" in n.output(), 20, "the node saw the broker go")
        broker.start()
        p2 = MqttProbe(broker.port)
        try:
            p2.subscribe(f"{REALM}/proc/reg/#")
            p2.subscribe("rc/out")
            p2.wait_for(f"{REALM}/proc/reg/{n.manager_uuid}", lambda m: m.json()["action"] == "create", timeout=30)
            p2.wait_for(f"{REALM}/proc/reg/{rt}", lambda m: m.json()["action"] == "create", timeout=30)
            # the log line comes through the node's stdout pipe, which may lag the MQTT messages
            wait_until(lambda: "(reconnected)" in n.output(), 10, "the reconnect in the log")
            # the node subscribes again before it registers again (one connection, in order): the
            # channel subscription is in place at the broker once its registration came
            p2.publish("rc/in", b"after-restart", qos=0)
            assert p2.wait_for("rc/out")[0].payload == b"after-restart"
            p2.subscribe(f"{REALM}/proc/control/{rt}")
            delete(p2, rt, "r1")
            assert exited(p2, rt, "r1")["status"]["reason"] == "deleted"
        finally:
            p2.close()


def test_sd_notify_messages(broker: Any) -> None:
    d = tempfile.mkdtemp(prefix="sl-notify-")
    path = os.path.join(d, "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(10)
    got: list[str] = []
    try:
        n = node(broker, runtimes=["test/reg"], env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        try:
            n.start()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not ("READY=1" in got and got.count("WATCHDOG=1") >= 2):
                got += srv.recv(4096).decode().split("\n")
        finally:
            assert n.stop() == 0
        srv.settimeout(2)
        try:
            while "STOPPING=1" not in got:
                got += srv.recv(4096).decode().split("\n")
        except socket.timeout:
            pass
    finally:
        srv.close()
        os.unlink(path)
        os.rmdir(d)
    assert "READY=1" in got
    assert any(x.startswith("STATUS=") and "runtimes" in x for x in got)
    assert got.count("WATCHDOG=1") >= 2
    assert "STOPPING=1" in got


def test_same_name_keeps_uuids_across_restarts(broker: Any) -> None:
    d = tempfile.mkdtemp(prefix="sl-state-")
    try:
        with node(broker, name="stable", runtimes=["test/reg"], state_dir=d) as a:
            first = (a.manager_uuid, dict(a.runtime_uuids))
        with node(broker, name="stable", runtimes=["test/reg"], state_dir=d) as b:
            assert (b.manager_uuid, b.runtime_uuids) == first
    finally:
        import shutil

        shutil.rmtree(d, ignore_errors=True)


def test_quit_on_terminal_stdin_journal_lines_and_log_file(broker: Any) -> None:
    """`q` on a terminal stops the node (exit 0); under systemd (JOURNAL_STREAM) lines carry <N>
    priorities; `-l DIR` also writes DIR/NAME.log in the seed's format."""
    import pty
    import shutil
    import subprocess
    import sys

    from testbed.node import START

    logdir = tempfile.mkdtemp(prefix="sl-logs-")
    master, slave = pty.openpty()
    env = dict(os.environ, JOURNAL_STREAM="8:12345")
    env.pop("NOTIFY_SOCKET", None)
    p = subprocess.Popen([sys.executable, START, "-n", "ttynode", "-r", "test/reg", "--mqtt", f"127.0.0.1:{broker.port}",
                          "--no-state", "--reg-timeout", "0.3", "-l", logdir], stdin=slave, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env)
    os.close(slave)
    try:
        log_file = os.path.join(logdir, "ttynode.log")
        wait_until(lambda: os.path.exists(log_file) and "registration done" in Path(log_file).read_text(), 20, "registration")
        os.write(master, b"q\n")
        assert p.wait(20) == 0
        out = p.stdout.read().decode() if p.stdout else ""
        assert "<6>[mgr:INF] stopping (quit on stdin)" in out
        assert "\033[" not in out
        text = Path(log_file).read_text()
        assert "[mgr:INF] stopping (quit on stdin)" in text and text.startswith("[20")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if p.stdout is not None:
            p.stdout.close()
        os.close(master)
        shutil.rmtree(logdir, ignore_errors=True)


def test_username_and_password_file_from_config() -> None:
    """A broker that refuses anonymous clients: the node logs in with `mqtt_username` + the `pwd` file."""
    import shutil
    import subprocess

    from testbed.broker import Mosquitto

    d = tempfile.mkdtemp(prefix="sl-auth-")
    try:
        pwfile = os.path.join(d, "passwd")
        subprocess.run(["mosquitto_passwd", "-b", "-c", pwfile, "nodeuser", "s3cret"], check=True, capture_output=True)
        os.chmod(pwfile, 0o644)
        with open(os.path.join(d, "pw.txt"), "w") as f:
            f.write("s3cret\n")
        cfg = os.path.join(d, "config.json")
        with open(cfg, "w") as f:
            f.write(orjson.dumps({"mqtt_username": "nodeuser", "pwd": os.path.join(d, "pw.txt")}).decode())
        with Mosquitto(extra_conf=f"allow_anonymous false\npassword_file {pwfile}\n") as secure:
            anon = node(secure, name="anonnode", runtimes=["test/reg"])
            try:
                anon.start(wait=False)
                wait_until(lambda: "refused the connection" in anon.output(), 15, "anonymous refused")
                assert anon.proc is not None and anon.proc.poll() is None  # still running, retrying
            finally:
                anon.stop()
            with node(secure, name="authnode", runtimes=["test/reg"], extra_args=["-c", cfg], watch_auth=("nodeuser", "s3cret")) as n:
                assert n.manager_uuid
                assert "connected to MQTT broker" in n.output()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_tls_broker(tmp_path: Any) -> None:
    """`use_ssl` with a CA file: the node connects over TLS; control and channel traffic work."""
    import ssl

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from testbed.broker import Mosquitto

    d = str(tmp_path)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    _self_signed(cert, key)
    cfg = os.path.join(d, "config.json")
    with open(cfg, "w") as f:
        f.write(orjson.dumps({"use_ssl": True, "ssl_ca": cert}).decode())
    with Mosquitto(extra_conf=f"certfile {cert}\nkeyfile {key}\n") as tls:
        n = node(tls, name="tlsnode", runtimes=["test/echo"], extra_args=["-c", cfg, "--uuid", "00000000-0000-4000-8000-000000000001"])
        got: list[tuple[str, bytes]] = []
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=cert, cert_reqs=ssl.CERT_REQUIRED)
        c.on_message = lambda cl, u, m: got.append((m.topic, bytes(m.payload)))
        subacks: list[int] = []
        c.on_subscribe = lambda cl, u, mid, rc, props: subacks.append(mid)
        try:
            n.start(wait=False)
            wait_until(lambda: "registration done" in n.output(), 20, "registration over TLS")
            from supervisor.identity import NAMESPACE
            import uuid as _uuid

            rt = str(_uuid.uuid5(NAMESPACE, "00000000-0000-4000-8000-000000000001/tlsnode"))
            c.connect("127.0.0.1", tls.port)
            c.loop_start()
            mids = [c.subscribe("tls/out", 0)[1], c.subscribe(f"{REALM}/proc/control/{rt}", 1)[1]]
            wait_until(lambda: set(mids) <= set(subacks), 10, "SUBACKs over TLS")
            c.publish(f"{REALM}/proc/control/{rt}", orjson.dumps({"action": "create", "data": {"uuid": "t1", "channels": [
                {"path": "in", "mode": "r", "topic": "tls/in"}, {"path": "out", "mode": "w", "topic": "tls/out"}]}}), qos=1)
            wait_until(lambda: "opened channel 1 on tls/out" in n.output(), 10, "channels open")
            for i in range(20):
                c.publish("tls/in", b"x%d" % i, qos=0)
            wait_until(lambda: len([g for g in got if g[0] == "tls/out"]) == 20, 10, "20 echoes over TLS")
            assert [p for t, p in got if t == "tls/out"] == [b"x%d" % i for i in range(20)]
        finally:
            c.loop_stop()
            n.stop()


def test_sysv_backend_echo(broker: Any, probe: MqttProbe) -> None:
    """`--backend sysv` (systems without POSIX queues) runs the same node."""
    probe.subscribe("sv/out")
    with node(broker, runtimes=["test/echo"], extra_args=["--backend", "sysv"]) as n:
        rt = n.runtime_uuid()
        create(probe, rt, "v1", channels=[{"path": "in", "mode": "r", "topic": "sv/in"}, {"path": "out", "mode": "w", "topic": "sv/out"}])
        wait_until(lambda: "opened channel 1 on sv/out" in n.output(), 10, "channels open")
        probe.publish("sv/in", b"sysv", qos=0)
        assert probe.wait_for("sv/out")[0].payload == b"sysv"


def _self_signed(cert_path: str, key_path: str) -> None:
    """A self-signed certificate for 127.0.0.1 (`cryptography` comes with asyncssh; no openssl CLI needed)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    os.chmod(key_path, 0o644)


def test_hung_worker_aborted_by_heartbeat_and_restarted(broker: Any, probe: MqttProbe) -> None:
    probe.subscribe(f"{REALM}/proc/#")
    with node(broker, runtimes=["test/echo"], extra_args=["--worker-timeout", "1.5"]) as n:
        rt = n.runtime_uuid()
        wait_until(lambda: "STARTING -> RUNNING" in n.output(), 10, "worker running")
        [pid] = n.worker_pids()
        create(probe, rt, "h1", argv=["!hang"])
        st = exited(probe, rt, "h1", timeout=20)
        assert st["status"]["reason"] == "crashed"
        out = n.output()
        assert "(--worker-timeout): SIGABRT" in out
        assert "Fatal Python error: Aborted" in out and "in command" in out  # faulthandler: where it hung
        wait_until(lambda: n.worker_pids() and n.worker_pids() != [pid], 15, "worker restarted")


# --------------------------------------------------------------------------- the loop's timers


def _wakeups(pid: int) -> int:
    """Voluntary context switches of a process so far: one per sleep the loop ends."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches"))


def test_idle_loop_sleeps_until_its_next_deadline(broker: Any) -> None:
    """No traffic: the supervisor wakes for its deadlines (keepalives, the once-a-second look), not
    every TIMER_GRAIN (20 ms: 50 wake-ups a second before)."""
    with node(broker, runtimes=["test/reg", "test/reg"]) as n:
        # settled: every runtime's registration waited FAST (no orchestrator) and both workers run
        wait_until(lambda: "registration done" in n.output(), 20, "the registration round settled")
        wait_until(lambda: n.output().count("STARTING -> RUNNING") == 2, 20, "both workers RUNNING")
        w0, t0 = _wakeups(n.pid), time.monotonic()
        time.sleep(3.0)
        rate = (_wakeups(n.pid) - w0) / (time.monotonic() - t0)
        assert rate < 15, f"idle supervisor woke {rate:.1f} times a second"


def test_a_message_the_timers_queue_goes_out_before_the_loop_sleeps(broker: Any) -> None:
    """Registration retries are sent by the timers; each must reach the broker when it is due (0.5 s
    after the first attempt), not at the loop's next wake-up (up to 1 s later). Regression: with the
    flush only after the select, the chaos fleet scenario's graceful restart failed 4 of 10 runs."""
    stamps: list[float] = []
    watch = MqttProbe(broker.port)
    try:
        watch.client.on_message = lambda c, u, m: stamps.append(time.monotonic())
        watch.subscribe(f"{REALM}/proc/reg/+")
        n = node(broker, runtimes=["test/reg"], log_level="INF", reg_timeout=10.0).start(wait=False)
        try:  # no orchestrator: the manager's registration is repeated (runtimes wait for its answer)
            wait_until(lambda: len(stamps) >= 3, 10, "three attempts of the manager's registration")
        finally:
            n.stop()
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        # due 1.0 and 2.0 s, each x 0.75-1.25 (jitter, supervisor/registrar.py); the loop's next wake-up
        # would add up to 1 s
        assert 0.7 <= gaps[0] < 1.5 and 1.45 <= gaps[1] < 2.75, f"registration attempts {gaps} s apart (1.0, 2.0 due)"
    finally:
        watch.close()
