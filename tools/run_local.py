"""`make run`: a broker, the orchestrator and a node on localhost, and proof that they work.

1. mosquitto on 127.0.0.1:PORT (reused when something already listens there; installed with apt
   when missing and we are root, otherwise the exact command to run is printed);
2. the orchestrator (`python -m orchestrator`) when `orchestrator/` exists;
3. a node (`start.py -n local -r RUNTIME`, RUNTIME `linux` when it is available, else `test/echo`);
then it waits for the registrations, shows `manage.py list` (or the registration messages when there
is no orchestrator), and keeps everything running until Ctrl-C (`--check`: stop right away, exit 0).

Usage: python tools/run_local.py [--port PORT] [--http-port PORT] [--runtime NAME] [--check]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from common.broker import mosquitto_lines  # noqa: E402


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)


def ensure_mosquitto() -> str:
    exe = find_mosquitto()
    if exe:
        return exe
    cmd = "apt-get update && apt-get install -y mosquitto"
    if os.geteuid() != 0:
        raise SystemExit(f"mosquitto is not installed. Install it with:\n    sudo sh -c '{cmd}'\nthen run `make run` again.")
    print(f"== installing mosquitto: {cmd}", flush=True)
    subprocess.run(["sh", "-c", f"DEBIAN_FRONTEND=noninteractive {cmd}"], check=True)
    exe = find_mosquitto()
    if not exe:
        raise SystemExit("apt-get installed mosquitto but no mosquitto binary was found")
    return exe


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up within {timeout}s")
        time.sleep(0.1)


def pick_runtime() -> str:
    import runtimes

    try:
        cls = runtimes.get("linux").load()
        if not cls.unavailable({}):
            return "linux"
    except Exception:
        pass
    return "test/echo"


def pump(proc: subprocess.Popen[bytes], prefix: str) -> None:
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, b""):
        sys.stdout.write(f"{prefix} {line.decode('utf-8', 'replace')}")
        sys.stdout.flush()


def run_hello(py: str, port: int, http_port: int, node: str, tmp: str) -> None:
    """`manage.py run` the hello module on the node and print what it wrote and how it exited."""
    import orjson
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    cfg = os.path.join(tmp, "config.json")
    with open(cfg, "w") as f:
        f.write(orjson.dumps({"mqtt": "127.0.0.1", "mqtt_port": port, "http": "127.0.0.1", "http_port": http_port}).decode())
    seen: list[tuple[str, bytes]] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    c.on_message = lambda cl, u, m: seen.append((m.topic, bytes(m.payload)))
    c.connect("127.0.0.1", port)
    c.subscribe([("realm/proc/stdio/#", 1), ("realm/proc/control/+", 1)])
    c.loop_start()
    try:
        time.sleep(0.3)
        print(f"== python manage.py run -r {node} -n hello -f helloworld.wasm")
        subprocess.run([py, os.path.join(ROOT, "manage.py"), "run", "-c", cfg, "-r", node, "-n", "hello", "-f", "helloworld.wasm"], cwd=ROOT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(b'"exited"' in p for _, p in seen):
            time.sleep(0.1)
        for topic, payload in seen:
            if "/proc/stdio/" in topic and payload.strip():
                print(f"   stdout of the module: {payload.decode('utf-8', 'replace').rstrip()}")
            elif b'"exited"' in payload:
                print(f"   exited: {orjson.loads(payload)['data'].get('status')}")
    finally:
        c.loop_stop()
        c.disconnect()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="broker + orchestrator + node on localhost")
    ap.add_argument("--port", type=int, default=1883, help="MQTT port (default 1883)")
    ap.add_argument("--http-port", type=int, default=8000, help="orchestrator REST port (default 8000)")
    ap.add_argument("--runtime", default=None, help="runtime of the node (default: linux if available, else test/echo)")
    ap.add_argument("--name", default="local", help="node name (default: local)")
    ap.add_argument("--check", action="store_true", help="show that it works, then stop everything and exit")
    a = ap.parse_args(argv)
    py = sys.executable
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    tmp = tempfile.mkdtemp(prefix="sl-run-")
    try:
        # 1. broker
        if listening(a.port):
            print(f"== MQTT broker: reusing the one on 127.0.0.1:{a.port}")
        else:
            exe = ensure_mosquitto()
            conf = os.path.join(tmp, "mosquitto.conf")
            with open(conf, "w") as f:
                # the fleet settings (common/broker.py), with persistence in this run's directory
                f.write(f"listener {a.port} 127.0.0.1\nallow_anonymous true\n" + "\n".join(mosquitto_lines(tmp)) + "\n")
                if os.geteuid() == 0:
                    f.write("user root\n")
            procs.append(("mosquitto", subprocess.Popen([exe, "-c", conf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
            wait_for(lambda: listening(a.port), 10, f"mosquitto on port {a.port}")
            print(f"== MQTT broker: mosquitto on 127.0.0.1:{a.port} (pid {procs[-1][1].pid})")
        # 2. orchestrator
        has_orch = os.path.exists(os.path.join(ROOT, "orchestrator", "__main__.py"))
        if has_orch:
            db = os.path.join(tmp, "orchestrator.db")
            p = subprocess.Popen([py, "-m", "orchestrator", "--db", db, "--mqtt", "127.0.0.1", "--mqtt-port", str(a.port),
                                  "--http-port", str(a.http_port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            procs.append(("orchestrator", p))
            threading.Thread(target=pump, args=(p, "[orch]"), daemon=True).start()
            wait_for(lambda: listening(a.http_port), 20, f"the orchestrator's REST API on port {a.http_port}")
            print(f"== orchestrator: REST API on http://127.0.0.1:{a.http_port}/api/runtimes/")
        else:
            print("== orchestrator: not part of this checkout yet; the node registers and times out waiting for answers")
        # 3. node
        rt = a.runtime or pick_runtime()
        from testbed.node import NodeProcess

        node = NodeProcess(a.port, name=a.name, runtimes=[rt], reg_timeout=5.0 if has_orch else 1.0, log_level="INF",
                           state_dir=os.path.join(tmp, "state"), backoff=1.0)
        node.start(timeout=60)
        assert node.proc is not None
        procs.append(("node", node.proc))
        print(f"== node {a.name}: pid {node.pid}, manager {node.manager_uuid}, runtime {rt} = {node.runtime_uuid()}")
        if has_orch:  # start() returns once the registrations are published; wait for the answers
            deadline = time.monotonic() + 15
            while node.output().count("] registered ") < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        printed = node.output()
        print(printed, end="")
        shown = len(printed)
        if has_orch:
            time.sleep(1.0)
            url = f"http://127.0.0.1:{a.http_port}"
            hello = os.path.join(ROOT, "build", "modules", "helloworld.wasm")
            if rt == "linux" and os.path.exists(hello):
                run_hello(py, a.port, a.http_port, a.name, tmp)
            print(f"== python manage.py list --url {url}")
            subprocess.run([py, os.path.join(ROOT, "manage.py"), "list", "--url", url], cwd=ROOT)
        print("== it works." + ("" if a.check else " Ctrl-C stops everything."), flush=True)
        if a.check:
            return 0
        try:
            while all(p.poll() is None for _, p in procs):
                time.sleep(0.5)
                out = node.output()
                if len(out) > shown:
                    sys.stdout.write(out[shown:])
                    sys.stdout.flush()
                    shown = len(out)
            dead = [n for n, p in procs if p.poll() is not None]
            print(f"== {', '.join(dead)} ended; stopping the rest")
            return 1
        except KeyboardInterrupt:
            print("\n== stopping")
            return 0
    finally:
        for name, p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
