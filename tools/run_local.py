"""`make run`: a broker, the orchestrator and a node on localhost, and proof that they work.

1. mosquitto on 127.0.0.1:PORT (reused when something already listens there; installed with apt
   when missing and we are root, otherwise the exact command to run is printed);
2. the orchestrator (`python -m orchestrator`) when `orchestrator/` exists, and a collector
   (`python -m collector`: benchmark results into STATE_DIR/data, so campaign cells end `done`, not
   "data pending");
3. a node (`start.py -n local -r RUNTIME`, RUNTIME `linux` when it is available, else `test/echo`);
then it waits for the registrations, shows `manage.py list` (or the registration messages when there
is no orchestrator), and keeps everything running until Ctrl-C (`--check`: stop right away, exit 0).

It behaves like a supervisor: a component that dies is started again after a backoff (1 s doubling
to 30 s; back to 1 s after a minute up), the others keep running. Ctrl-C prints one line
(`== stopping`), stops the node, then the orchestrator, then the broker (so nobody logs a lost
connection), and exits 0; so does SIGTERM. The components die with the script (PR_SET_PDEATHSIG)
even when it is killed. The components run in sessions of their own: the terminal's Ctrl-C
reaches only this script. Everything that should outlive the stack lives in the state directory
(`--state-dir`, default ~/.local/state/silverline): the node's uuids, the orchestrator's store
(`orchestrator.db`: campaigns, deployments, history), the collector's results (`data/`) and the broker's persistence (`mosquitto/`:
sessions and their queued messages).

Usage: python tools/run_local.py [--port PORT] [--http-port PORT] [--runtime NAME] [--state-dir DIR] [--check]
"""
from __future__ import annotations

import argparse
import ctypes
import json
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


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: the child calls it between fork and exec (no import there)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when this script dies, even by SIGKILL (Linux PR_SET_PDEATHSIG),
    so that no component outlives the stack (they run in sessions of their own)."""
    _LIBC.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG = 1


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # `kill PID` stops as Ctrl-C does: in order, exit 0


class Component:
    """One supervised process: started in a session of its own, its output prefixed and echoed."""

    BACKOFF = (1.0, 30.0)  # first restart delay, max; reset after STABLE s up
    STABLE = 60.0

    def __init__(self, name: str, argv: list[str], prefix: str | None = None) -> None:
        self.name, self.argv, self.prefix = name, argv, prefix
        self.proc: subprocess.Popen[bytes] | None = None
        self.out: list[str] = []
        self.started = 0.0
        self.delay = self.BACKOFF[0]
        self.restart_at: float | None = None

    def start(self) -> "Component":
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
        self.started = time.monotonic()
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        return self

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            self.out.append(line)
            if self.prefix is not None:
                sys.stdout.write(f"{self.prefix} {line}" if self.prefix else line)
                sys.stdout.flush()

    def output(self) -> str:
        return "".join(self.out)

    def check(self, now: float) -> None:
        """Start it again when it died (after the backoff)."""
        if self.proc is None:
            return
        code = self.proc.poll()
        if code is None:
            if now - self.started > self.STABLE:
                self.delay = self.BACKOFF[0]
            return
        if self.restart_at is None:
            self.restart_at = now + self.delay
            print(f"== {self.name} exited with code {code}; starting it again in {self.delay:g} s", flush=True)
            self.delay = min(self.BACKOFF[1], self.delay * 2)
        elif now >= self.restart_at:
            self.restart_at = None
            self.start()
            print(f"== {self.name} started again (pid {self.proc.pid})", flush=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="broker + orchestrator + node on localhost")
    ap.add_argument("--port", type=int, default=1883, help="MQTT port (default 1883)")
    ap.add_argument("--http-port", type=int, default=8000, help="orchestrator REST port (default 8000)")
    ap.add_argument("--runtime", default=None, help="runtime of the node (default: linux if available, else test/echo)")
    ap.add_argument("--name", default="local", help="node name (default: local)")
    ap.add_argument("--state-dir", default="~/.local/state/silverline",
                    help="what outlives the stack: node uuids, orchestrator.db, mosquitto/ (default ~/.local/state/silverline)")
    ap.add_argument("--check", action="store_true", help="show that it works, then stop everything and exit")
    a = ap.parse_args(argv)
    py = sys.executable
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background by a shell: Ctrl-C cannot come
        signal.signal(signal.SIGINT, signal.default_int_handler)
    state = os.path.expanduser(a.state_dir)
    os.makedirs(os.path.join(state, "mosquitto"), exist_ok=True)
    comps: list[Component] = []
    tmp = tempfile.mkdtemp(prefix="sl-run-")
    try:
        # 1. broker
        if listening(a.port):
            print(f"== MQTT broker: reusing the one on 127.0.0.1:{a.port}")
        else:
            exe = ensure_mosquitto()
            conf = os.path.join(tmp, "mosquitto.conf")
            with open(conf, "w") as f:
                # the fleet settings (common/broker.py), with persistence in the state directory
                f.write(f"listener {a.port} 127.0.0.1\nallow_anonymous true\n"
                        + "\n".join(mosquitto_lines(os.path.join(state, "mosquitto"))) + "\n")
                if os.geteuid() == 0:
                    f.write("user root\n")
            comps.append(Component("mosquitto", [exe, "-c", conf]).start())
            wait_for(lambda: listening(a.port), 10, f"mosquitto on port {a.port}")
            print(f"== MQTT broker: mosquitto on 127.0.0.1:{a.port} (pid {comps[-1].proc.pid if comps[-1].proc else '?'},"
                  f" persistence in {state}/mosquitto/)")
        # 2. orchestrator
        has_orch = os.path.exists(os.path.join(ROOT, "orchestrator", "__main__.py"))
        if has_orch:
            db = os.path.join(state, "orchestrator.db")
            comps.append(Component("orchestrator", [py, "-m", "orchestrator", "--db", db, "--mqtt", "127.0.0.1", "--mqtt-port",
                                                    str(a.port), "--http-port", str(a.http_port)], "[orch]").start())
            wait_for(lambda: listening(a.http_port), 20, f"the orchestrator's REST API on port {a.http_port}")
            pid = comps[-1].proc.pid if comps[-1].proc else "?"
            print(f"== orchestrator: REST API on http://127.0.0.1:{a.http_port}/api/runtimes/ (pid {pid}, store {db})")
        else:
            print("== orchestrator: not part of this checkout yet; the node registers and times out waiting for answers")
        # 2b. collector: a campaign's cell is done once a collector stored its results (else "data pending")
        if os.path.exists(os.path.join(ROOT, "collector", "__main__.py")):
            data = os.path.join(state, "data")
            ccfg = os.path.join(tmp, "collector.json")
            with open(ccfg, "w") as f:
                json.dump({"mqtt": "127.0.0.1", "mqtt_port": a.port, "http": "127.0.0.1", "http_port": a.http_port}, f)
            comps.append(Component("collector", [py, "-m", "collector", "-c", ccfg, "-d", data], "[coll]").start())
            coll = comps[-1]
            wait_for(lambda: "collecting " in coll.output() or coll.proc is None or coll.proc.poll() is not None, 20,
                     "the collector's subscription")
            pid = coll.proc.pid if coll.proc else "?"
            print(f"== collector: benchmark results into {data}/ (pid {pid}; `manage.py report {data}`)")
        # 3. node
        rt = a.runtime or pick_runtime()
        node = Component("node", [py, os.path.join(ROOT, "start.py"), "-n", a.name, "-r", rt, "--mqtt", f"127.0.0.1:{a.port}",
                                  "-v", "INF", "--reg-timeout", "5" if has_orch else "1", "--backoff", "1",
                                  "--state-dir", state, "--module-root", os.path.join(ROOT, "build", "modules")], "").start()
        comps.append(node)
        want = "] registered " if has_orch else "registering"
        wait_for(lambda: node.output().count(want) >= (2 if has_orch else 1) or node.proc is None or node.proc.poll() is not None,
                 60, f"node {a.name}'s registration")
        if node.proc is None or node.proc.poll() is not None:
            raise SystemExit(f"node {a.name} exited with code {node.proc.poll() if node.proc else '?'}")
        print(f"== node {a.name}: pid {node.proc.pid}, runtime {rt}")
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
            while True:
                time.sleep(0.25)
                now = time.monotonic()
                for c in comps:
                    c.check(now)
        except KeyboardInterrupt:
            print("\n== stopping", flush=True)
            return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the orderly stop short
        for c in reversed(comps):  # the node first, the broker last: nobody loses its connection
            c.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
