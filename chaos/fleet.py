"""Scenario: a fleet that heals itself (docs/reliability.md).

8 nodes of 2 `test/echo` runtimes (3 in the `test` size), one broker with a second broker bridged to
it (two of the nodes use that one), and the orchestrator, all started in a shuffled order. Then:
the orchestrator restarted with an empty store; the broker restarted; nodes restarted gracefully
(SIGTERM) and by SIGKILL; duplicate starts (the same node again on this machine: the state-dir lock;
a copy of its state dir, as on another machine: the orchestrator's refusal). Every module reads
`fleet/ping` and answers on `fleet/pong` with its own uuid: a ping answered twice by one module is a
duplicate execution. A chain of two modules across the bridge counts what crosses it.

Figures (the issue's keys):
- `register_after_orchestrator_start_s_max`: per node, from the orchestrator's online announcement
  (or the node's start, when later) to both runtimes answered `ok`;
- `reregister_after_fresh_store_s_max`: from the online announcement of the orchestrator with an
  empty store to every runtime answered again;
- `duplicate_executions`: extra answers to a ping by one module, over every ping round;
- `last_wills_on_clean_stop` of `clean_stops`: manager last wills (the will carries `last_will: true`)
  seen after SIGTERM stops (SIGKILL stops must show one each: `last_wills_on_sigkill`);
- `resurrected_after_graceful_restart` of `graceful_restart_modules`: modules alive and answering
  after their node's graceful restart;
- `bridge_channel_ok`, `bridge_duplicates`: the chain across the bridge delivered every message, and
  how many arrived more than once.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from collections import Counter

from chaos.base import REALM, Inbox, Outcome, Size, Watch, js, module_create, wait_until
from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc

DUPLICATE_EXIT = 4  # start.py's exit status for a refused duplicate identity


def bridge_conf(remote_port: int) -> str:
    """The bridge of docs/cluster.md ("Past one broker")."""
    return "\n".join(["connection fleet-bridge", f"address 127.0.0.1:{remote_port}", "topic # both 2",
                      "try_private true", "cleansession true", "bridge_protocol_version mqttv50", "restart_timeout 1 2"])


class Fleet:
    """The nodes, their brokers and state dirs; one NodeProcess per node at a time."""

    def __init__(self, size: Size, tmp: str, ports: dict[str, int]) -> None:
        self.count = 3 if size.name == "test" else 8
        self.names = [f"fleet{i}" for i in range(self.count)]
        self.on_b = set(self.names[-2:]) if self.count >= 3 else set()
        self.tmp = tmp
        self.ports = ports
        self.procs: dict[str, NodeProcess] = {}
        self.uuids: dict[str, list[str]] = {}  # node -> runtime uuids (from its state file)
        self.started_at: dict[str, float] = {}

    def state(self, name: str) -> str:
        return os.path.join(self.tmp, "state", name)

    def make(self, name: str, state: str | None = None) -> NodeProcess:
        port = self.ports["b" if name in self.on_b else "a"]
        return NodeProcess(port, name=name, runtimes=["test/echo", "test/echo"], reg_timeout=5, state_dir=state or self.state(name),
                           log_level="INF")

    def start(self, name: str) -> NodeProcess:
        p = self.make(name).start(wait=False)
        self.procs[name] = p
        self.started_at[name] = time.monotonic()
        return p

    def read_uuids(self, name: str) -> list[str]:
        import json
        from pathlib import Path
        path = os.path.join(self.state(name), f"{name}.json")
        rts = wait_until(lambda: json.loads(Path(path).read_text())["runtimes"], 30, f"state file of {name}")
        self.uuids[name] = sorted(rts.values())
        return self.uuids[name]

    def stop_all(self) -> None:
        for p in self.procs.values():
            p.stop()


def _ok_replies(inbox: Inbox, uuids: set[str], since: int) -> dict[str, float]:
    """First `ok` registration answer per runtime uuid after inbox position `since`."""
    out: dict[str, float] = {}
    for t, topic, payload in inbox.find(lambda t, p: t.startswith(f"{REALM}/proc/reg/"), since):
        u = topic.rsplit("/", 1)[1]
        m = js(payload)
        if u in uuids and u not in out and m.get("type") == "resp" and (m.get("data") or {}).get("result") == "ok":
            out[u] = t
    return out


def _online_at(inbox: Inbox, since: int) -> float:
    hit = inbox.wait(lambda t, p: t == f"{REALM}/proc/orchestrator" and js(p).get("action") == "online", 60, since=since)
    return hit[0][0]


def run(size: Size) -> Outcome:
    out = Outcome("fleet")
    tmp = tempfile.mkdtemp(prefix="sl-chaos-fleet-")
    rng = random.Random(12)
    # the fleet settings with persistence (common/broker.py): the orchestrator's session outlives the
    # broker restart, so a node's goodbye sent before the orchestrator is back waits for it there
    broker = Mosquitto(fleet=True, persistent=True).start()
    broker_b = Mosquitto(extra_conf=bridge_conf(broker.port)).start()
    ports = {"a": broker.port, "b": broker_b.port}
    fleet = Fleet(size, tmp, ports)
    inbox = Inbox()
    watch = Watch(broker.port, inbox, [(f"{REALM}/proc/reg/#", 2), (f"{REALM}/proc/orchestrator", 1), ("fleet/#", 2)],
                  client_id="fleet-watch")
    watch_b = Watch(broker_b.port, inbox, [("fleet/chain/#", 2)], client_id="fleet-watch-b")
    orch = OrchestratorProc(broker.port, tmp, ka_interval=1.0)
    duplicates = 0
    mods: dict[str, str] = {}  # module uuid -> runtime uuid
    try:
        # -- 1. everything in a shuffled order -------------------------------------------------
        order = ["orchestrator", *fleet.names]
        rng.shuffle(order)
        mark = len(inbox)
        for what in order:
            if what == "orchestrator":
                orch.start()
            else:
                fleet.start(what)
            time.sleep(rng.uniform(0.0, 0.4))
        t_online = _online_at(inbox, mark)
        all_rts = {u for n in fleet.names for u in fleet.read_uuids(n)}
        wait_until(lambda: len(_ok_replies(inbox, all_rts, mark)) == len(all_rts), 90, "every runtime registered")
        ok = _ok_replies(inbox, all_rts, mark)
        reg = [max(ok[u] for u in fleet.uuids[n]) - max(t_online, fleet.started_at[n]) for n in fleet.names]
        out.figures["start_order"] = " ".join(order)
        out.figures["register_after_orchestrator_start_s_max"] = round(max(reg), 2)
        out.check(max(reg) <= 5.0, f"a node registered {max(reg):.1f} s after the orchestrator started (target <= 5)")

        # -- 2. the orchestrator again, with an empty store ------------------------------------
        orch.stop()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(orch.db + suffix):
                os.unlink(orch.db + suffix)
        mark = len(inbox)
        orch.start()
        t_online = _online_at(inbox, mark)
        wait_until(lambda: len(_ok_replies(inbox, all_rts, mark)) == len(all_rts), 60, "every runtime registered with the fresh store")
        again = max(_ok_replies(inbox, all_rts, mark).values()) - t_online
        out.figures["reregister_after_fresh_store_s_max"] = round(again, 2)
        out.check(again <= 5.0, f"runtimes registered again {again:.1f} s after the fresh orchestrator came (target <= 5)")

        # -- 3. one echo module per runtime, answering pings with its uuid ---------------------
        for n in fleet.names:
            for rt in fleet.uuids[n]:
                u = f"{len(mods):08d}-0000-4000-8000-{rt[-12:]}"
                mods[u] = rt
                grants = [{"path": "fleet/ping", "mode": "r", "topic": "fleet/ping"},
                          {"path": "fleet/pong", "mode": "w", "topic": "fleet/pong"}]
                watch.publish(f"{REALM}/proc/control", module_create(u, rt, name=f"ping-{n}", channels=grants, prefix=f"{u}|", qos=1)).wait_for_publish(5)
        # the chain across the bridge: a module on a node of broker B, one on broker A
        chain: list[str] = []
        if fleet.on_b:
            b_node = sorted(fleet.on_b)[0]
            a_node = next(n for n in fleet.names if n not in fleet.on_b)
            for node, path_in, path_out in ((b_node, "fleet/chain/a", "fleet/chain/b"), (a_node, "fleet/chain/b", "fleet/chain/c")):
                u = f"c{len(chain):07d}-0000-4000-8000-000000000000"
                chain.append(u)
                watch.publish(f"{REALM}/proc/control", module_create(u, fleet.uuids[node][0], name=f"chain-{node}", qos=2, channels=[
                    {"path": path_in, "mode": "r", "topic": path_in}, {"path": path_out, "mode": "w", "topic": path_out}])).wait_for_publish(5)

        def modules_alive(uuids: list[str]) -> bool:
            return all(orch.get_status(f"/api/modules/{u}/")[1].get("status") == "A" for u in uuids)

        wait_until(lambda: modules_alive([*mods, *chain]), 60, "every module alive")
        rounds = [0]

        def ping_round(what: str, expect: set[str] | None = None, timeout: float = 20.0) -> int:
            """Ping until every expected module answered; count extra answers; return modules that answered."""
            nonlocal duplicates
            rounds[0] += 1
            tag = f"ping-{rounds[0]}"
            since = len(inbox)
            expect = set(mods) if expect is None else expect
            deadline = time.monotonic() + timeout
            seen: Counter[str] = Counter()
            tries = 0
            while time.monotonic() < deadline:
                tries += 1
                watch.publish("fleet/ping", f"{tag}.{tries}".encode(), qos=1)
                time.sleep(0.5)
                seen = Counter(p.split(b"|", 1)[0].decode() + "/" + p.split(b"|", 1)[1].decode()
                               for _, _, p in inbox.find(lambda t, p: t == "fleet/pong" and f"|{tag}.".encode() in p, since))
                if {k.split("/")[0] for k in seen} >= expect:
                    break
            # late copies count too. Fence: one more ping; a module answers in order, so once every module
            # that answered has answered the fence, its copies of the pings before it are in
            fence = f"{tag}-fence".encode()
            watch.publish("fleet/ping", fence, qos=1)

            def fenced() -> bool:
                pongs = inbox.find(lambda t, p: t == "fleet/pong", since)
                answered = {p.split(b"|", 1)[0] for _, _, p in pongs if f"|{tag}.".encode() in p}
                return answered <= {p.split(b"|", 1)[0] for _, _, p in pongs if p.endswith(b"|" + fence)}
            try:
                wait_until(fenced, timeout, f"{what}: the fence ping answered")
            except TimeoutError as e:
                out.fail(str(e))
            seen = Counter(p.split(b"|", 1)[0].decode() + "/" + p.split(b"|", 1)[1].decode()
                           for _, _, p in inbox.find(lambda t, p: t == "fleet/pong" and f"|{tag}.".encode() in p, since))
            extra = sum(c - 1 for c in seen.values() if c > 1)
            duplicates += extra
            out.check(extra == 0, f"{what}: {extra} pings answered more than once by the same module")
            answered = {k.split("/")[0] for k in seen}
            missing = expect - answered
            out.check(not missing, f"{what}: {len(missing)} of {len(expect)} modules did not answer")
            return len(answered & expect)

        ping_round("after the start")

        # -- 4. the broker restarts --------------------------------------------------------------
        broker.stop()
        time.sleep(1.0)
        broker.start()
        wait_until(lambda: all(orch.get_status(f"/api/runtimes/{u}/")[1].get("status") == "A" for u in all_rts), 60,
                   "runtimes alive after the broker restart")
        ping_round("after the broker restart")

        # -- 5. graceful restarts (clean stops: no last will) and SIGKILL restarts -----------------
        def will_count(since: int) -> int:
            return len(inbox.find(lambda t, p: js(p).get("action") == "delete" and (js(p).get("data") or {}).get("last_will") is True, since))

        clean_stops = wills_clean = resurrected = expected = 0
        graceful_rounds = 3 if size.name == "full" else 1
        for r in range(graceful_rounds):
            batch = fleet.names if size.name != "test" else fleet.names[:2]
            for n in batch:
                since = len(inbox)
                code = fleet.procs[n].stop()
                clean_stops += 1
                out.check(code == 0, f"graceful stop of {n}: exit status {code}")
                # fence: the broker took the node's disconnect before it routes two later round trips of
                # ours (a will is published when the broker handles the closed socket)
                for k in (1, 2):
                    mark_f = len(inbox)
                    watch.publish(f"fleet/fence/{n}", f"{clean_stops}.{k}".encode(), qos=1)
                    inbox.wait(lambda t, p: t == f"fleet/fence/{n}", 10, since=mark_f)
                wills_clean += will_count(since)
                # the stop deleted its runtimes at the orchestrator (a clean stop says goodbye): wait for
                # that before the restart, or the restart races the goodbye (a refused duplicate)
                try:
                    wait_until(lambda: not any(orch.get_status(f"/api/runtimes/{u}/")[1].get("status") == "A" for u in fleet.uuids[n]),
                               30, f"the orchestrator has {n}'s runtimes down after its clean stop")
                except TimeoutError as e:
                    out.fail(str(e))
                fleet.start(n)
            node_mods = [u for u, rt in mods.items() if any(rt in fleet.uuids[n] for n in batch)]
            expected += len(node_mods)
            try:
                wait_until(lambda: modules_alive(node_mods), 60, "modules resurrected after graceful restarts")
            except TimeoutError as e:
                out.fail(str(e))
            resurrected += ping_round(f"graceful restart round {r + 1}", set(node_mods))
        wills_kill = 0
        for n in fleet.names[:2]:
            since = len(inbox)
            fleet.procs[n].kill()
            try:
                inbox.wait(lambda t, p: js(p).get("action") == "delete" and (js(p).get("data") or {}).get("last_will") is True, 10, since=since)
                wills_kill += 1
            except TimeoutError:
                pass
            fleet.start(n)
        wait_until(lambda: modules_alive(list(mods)), 60, "modules resurrected after SIGKILL restarts")
        ping_round("after SIGKILL restarts")
        out.figures.update({"clean_stops": clean_stops, "last_wills_on_clean_stop": wills_clean,
                            "last_wills_on_sigkill": wills_kill, "resurrected_after_graceful_restart": resurrected,
                            "graceful_restart_modules": expected})
        out.check(wills_clean == 0, f"{wills_clean} last wills in {clean_stops} clean stops")
        out.check(wills_kill == 2, f"only {wills_kill} of 2 SIGKILLed nodes left a last will (the will count is not measured right)")
        out.check(resurrected == expected, f"{resurrected} of {expected} modules back after graceful restarts")

        # -- 6. duplicate starts -----------------------------------------------------------------
        def exit_status_of(p: NodeProcess, timeout: float) -> int | None:
            p.start(wait=False)
            try:
                return p.wait_exit(timeout)
            except subprocess.TimeoutExpired:
                return None
            finally:
                p.stop()

        refused_lock = refused_orch = 0
        for n in fleet.names[:2]:
            twin = fleet.make(n)  # same name, same state dir, same machine
            code = exit_status_of(twin, 30)
            if code == DUPLICATE_EXIT and "holds" in twin.output():
                refused_lock += 1
            else:
                out.fail(f"a second {n} on the same state dir: exit status {code}, not refused by the lock")
            copy = os.path.join(tmp, "copies", n)  # its state dir copied to "another machine"
            shutil.copytree(fleet.state(n), copy, ignore=shutil.ignore_patterns("*.lock"))
            other = fleet.make(n, state=copy)
            code = exit_status_of(other, 60)
            if code == DUPLICATE_EXIT:
                refused_orch += 1
            else:
                out.fail(f"{n} from a copied state dir: exit status {code}, not refused by the orchestrator\n{other.output()[-2000:]}")
        out.figures.update({"duplicate_starts_refused_by_lock": refused_lock, "duplicate_starts_refused_by_orchestrator": refused_orch})
        ping_round("after the duplicate starts")
        out.figures["duplicate_executions"] = duplicates
        out.figures["ping_rounds"] = rounds[0]

        # -- 7. the chain across the bridge ----------------------------------------------------------
        if chain:
            n_msgs = 50 if size.name != "test" else 20
            since = len(inbox)
            for i in range(n_msgs):
                watch_b.publish("fleet/chain/a", f"x{i}".encode(), qos=2).wait_for_publish(5)
            try:
                inbox.wait(lambda t, p: t == "fleet/chain/c", 30, count=n_msgs, since=since)
            except TimeoutError:
                pass
            # fence: one more message down the chain, after every other; once both watchers have it, the
            # copies of the ones before it are in
            watch_b.publish("fleet/chain/a", b"fence", qos=2).wait_for_publish(5)
            try:
                inbox.wait(lambda t, p: t == "fleet/chain/c" and p == b"fence", 30, count=2, since=since)
            except TimeoutError:
                out.fail("chain across the bridge: the fence message did not come through")
            got = Counter(p for _, t, p in inbox.find(lambda t, p: t == "fleet/chain/c" and p != b"fence", since))
            want = {f"x{i}".encode() for i in range(n_msgs)}
            # two watchers (A and B) each see every message once
            out.figures["bridge_channel_ok"] = set(got) == want and all(got[w] == 2 for w in want)
            out.figures["bridge_duplicates"] = sum(c - 2 for c in got.values() if c > 2)
            out.check(out.figures["bridge_channel_ok"], f"chain across the bridge: {len(got)} of {n_msgs} messages")
            out.check(out.figures["bridge_duplicates"] == 0, f"{out.figures['bridge_duplicates']} duplicates across the bridge")
    finally:
        fleet.stop_all()
        watch.close()
        watch_b.close()
        orch.stop()
        broker_b.close()
        broker.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out
