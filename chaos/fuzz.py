"""Scenario 5: bad input everywhere input comes in; never a crash, always a clear error.

Targets (live = a real process under test; in-process = the decoder the process uses):
- `control_node`: invalid control messages over MQTT to a node's runtime (each must give exactly
  one `error` on `{realm}/proc/log`), then the node must still create/delete a module.
- `control_orch`: the same kinds of messages on `{realm}/proc/control` to the orchestrator.
- `channel_open`: modules (test/echo `args.open`) open random [fd, flags, topic] channels: every
  open is either opened or refused with an error, and the node keeps serving.
- `ipc_records`: a live supervisor's receive ring, written by us with the worker stopped: random
  framed records (random h1/h2/payload), then raw corruption (bad lengths, indexes); the supervisor
  must survive and replace the worker. In-process: the IPC codecs and a ring over random bytes.
- `profile`: profile payload decoders and the collector's store with random types and bytes.
- `rest`: GET requests with random paths and queries, and malformed raw HTTP, to the orchestrator:
  never a 5xx, errors are JSON `{"error": ...}`, the orchestrator stays up.
"""
from __future__ import annotations

import http.client
import logging
import os
import random
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid as _uuid
from typing import Any, Callable

import orjson

from chaos import gen
from chaos.base import REALM, Inbox, Outcome, Size, Watch, alive, js, module_create, module_delete, wait_until, workers_by_name
from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc

SEED = 8


def run(size: Size, seed: int = SEED) -> Outcome:
    out = Outcome("fuzz")
    cases: dict[str, int] = {}
    crashes = 0
    tmp = tempfile.mkdtemp(prefix="sl-chaos-fz-")
    try:
        for name, fn in (("ipc_codecs", inproc_ipc), ("profile", inproc_profile)):
            logging.disable(logging.CRITICAL)  # the decoders log every refusal; here we count them
            try:
                n, bad = fn(size.fuzz_inproc, random.Random(seed), tmp)
            finally:
                logging.disable(logging.NOTSET)
            cases[name] = n
            crashes += len(bad)
            for b in bad[:5]:
                out.fail(f"{name}: {b}")
        # max_queued_messages 0 (no limit): 10^4 errors at QoS 1 in a burst must not be dropped by the broker
        with Mosquitto(extra_conf="max_queued_messages 0") as broker, OrchestratorProc(broker.port, tmp, ka_interval=1.0) as orch:
            inbox = Inbox()
            errlog = ErrLog()
            log_topic = f"{REALM}/proc/log"
            watch = Watch(broker.port, lambda t, p: errlog.add(p) if t == log_topic else inbox(t, p),
                          [(log_topic, 1), (f"{REALM}/proc/control/+", 1)])
            node = NodeProcess(broker.port, name="fz", runtimes=["test/echo", "test/reg"], reg_timeout=2, backoff=0.2,
                               log_level="DBG")
            try:
                node.start(timeout=60)
                for name, fn2 in (("control_node", live_control_node), ("control_orch", live_control_orch),
                                  ("channel_open", live_channel_open), ("ipc_records", live_ipc_records),
                                  ("rest", live_rest)):
                    t0 = time.monotonic()
                    res = fn2(size.fuzz_cases, random.Random(seed), node=node, orch=orch, watch=watch, inbox=inbox, errlog=errlog)
                    cases[name] = res.pop("cases")
                    for f in res.pop("failures", []):
                        out.fail(f"{name}: {f}")
                    for k, v in res.items():
                        out.figures[f"{name}.{k}"] = v
                    out.figures[f"{name}.s"] = round(time.monotonic() - t0, 1)
                    if node.proc is None or node.proc.poll() is not None:
                        crashes += 1
                        out.fail(f"{name}: the node died (exit {node.proc.returncode if node.proc else None}): "
                                 + " / ".join(node.output().strip().splitlines()[-6:]))
                        node = NodeProcess(broker.port, name="fz", runtimes=["test/echo", "test/reg"], reg_timeout=2,
                                           backoff=0.2, log_level="DBG")
                        node.start(timeout=60)
                    if orch.proc is None or orch.proc.poll() is not None:
                        crashes += 1
                        out.fail(f"{name}: the orchestrator died")
                        orch.start()
            finally:
                node.stop()
                watch.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out.figures["fuzz_cases_per_target"] = cases
    out.figures["fuzz_cases"] = sum(cases.values())
    out.figures["crashes"] = crashes
    return out


# ---------------------------------------------------------------------------- in-process


def _expect(fn: Callable[[], Any], allowed: tuple[type[BaseException], ...], bad: list[str], what: str) -> None:
    try:
        fn()
    except allowed as e:
        if not str(e).strip():
            bad.append(f"{what}: {type(e).__name__} without a message")
    except Exception as e:  # anything else is a crash of the caller
        bad.append(f"{what}: {type(e).__name__}: {e}")


def inproc_ipc(n: int, r: random.Random, tmp: str) -> tuple[int, list[str]]:
    """IPC codecs on random payloads, and rings over randomly corrupted buffers."""
    import ipc
    from ipc import messages
    from ipc.ring import HEADER, Ring
    from common.profile import decode_profile

    bad: list[str] = []
    count = 0
    for i in range(n):
        p = gen.rbytes(r, 80) if r.random() < 0.9 else gen.rbytes(r, 70000)
        _expect(lambda: messages.decode_open(p), (ipc.BadMessage,), bad, f"decode_open({p[:20]!r})")
        _expect(lambda: messages.decode_close(p), (ipc.BadMessage,), bad, f"decode_close({p[:20]!r})")
        _expect(lambda: messages.decode_log(p), (), bad, f"decode_log({p[:20]!r})")
        _expect(lambda: decode_profile(p), (ValueError,), bad, f"decode_profile({p[:20]!r})")
        count += 4
    # rings: a consistent ring with records, then one random corruption; read() must return
    # records or raise BadMessage, never anything else, never hang
    cap = 4096
    for i in range(max(1, n // 10)):
        buf = memoryview(bytearray(HEADER + cap))
        prod = Ring(buf, "fuzz", init=True, capacity=cap)
        cons = Ring(buf, "fuzz")
        for _ in range(r.randint(0, 20)):
            try:
                prod.write(r.randint(0, 255), r.randint(0, 255), gen.rbytes(r, 300), timeout=0)
            except ipc.RingFullError:
                break
        raw = buf.cast("B")
        kind = r.choice(["byte", "len", "tail", "head", "magic"])
        if kind == "byte":
            for _ in range(r.randint(1, 8)):
                raw[r.randrange(HEADER, HEADER + cap)] = r.getrandbits(8)
        elif kind == "len":
            off = HEADER + 8 * r.randrange(cap // 8)
            raw[off:off + 4] = r.getrandbits(32).to_bytes(4, "little")
        elif kind == "tail":
            raw[128:136] = r.getrandbits(64).to_bytes(8, "little")
        elif kind == "head":  # the consumer's head at attach (a C-core ring keeps its own copy)
            raw[64:72] = r.getrandbits(64).to_bytes(8, "little")
            cons.close()
            cons = Ring(buf, "fuzz")
        else:
            raw[0:8] = gen.rbytes(r, 8).ljust(8, b"\0")[:8]
            _expect(lambda: Ring(buf, "fuzz2"), (ipc.BadMessage,), bad, "attach to a ring with a bad header")
        t0 = time.monotonic()
        _expect(lambda: cons.read(), (ipc.BadMessage,), bad, f"ring read after {kind} corruption")
        if time.monotonic() - t0 > 1.0:
            bad.append(f"ring read after {kind} corruption took {time.monotonic() - t0:.1f}s")
        count += 1
        prod.close()
        cons.close()
    return count, bad


def inproc_profile(n: int, r: random.Random, tmp: str) -> tuple[int, list[str]]:
    """Profile payload decoders (every type) and the collector's store."""
    from collector.store import ProfileStore
    from benchmarking import layouts

    bad: list[str] = []
    types = ["benchmarking", "seeded", "interference", "opcodes", "instrumented", "deployed", "test", "", "x/y", "\u00e9"]
    count = 0
    for i in range(n):
        t = r.choice(types)
        p = gen.rbytes(r, 3000) if r.random() < 0.7 else orjson.dumps({gen.rstr(r): gen.junk(r) for _ in range(3)})
        _expect(lambda: layouts.decode(t, p), (layouts.PayloadError,), bad, f"layouts.decode({t!r}, {p[:20]!r})")
        count += 1
    store = ProfileStore(os.path.join(tmp, "profiles"))
    for i in range(max(1, n // 20)):
        t = r.choice(types)
        topic = r.choice([f"{REALM}/proc/profile/{t}/rt{i}/m{i}", f"{REALM}/proc/profile/{t}", f"{REALM}/proc/profile/{gen.rstr(r)}/{gen.rstr(r)}/{gen.rstr(r)}",
                          f"other/{t}", f"{REALM}/proc/profile/../../x/y/z"])
        p = gen.rbytes(r, 200)

        def store_one() -> None:
            path = store.on_profile(topic, p, REALM)
            if path is not None and not os.path.realpath(path).startswith(os.path.realpath(store.directory) + os.sep):
                raise AssertionError(f"profile written outside the data directory: {path}")
        _expect(store_one, (), bad, f"collector store {topic!r}")
        count += 1
    return count, bad


# ---------------------------------------------------------------------------- live


class ErrLog:
    """`{realm}/proc/log` error messages, each parsed once on arrival (10^4 of them are polled)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[dict[str, Any]] = []

    def add(self, payload: bytes) -> None:
        m = js(payload)
        d = m.get("data")
        if m.get("action") == "error" and isinstance(d, dict):
            with self.lock:
                self.items.append(d)

    def __len__(self) -> int:
        return len(self.items)

    def since(self, mark: int, field: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d for d in self.items[mark:] if field in d]


def _await(cond: Callable[[], Any], timeout: float, what: str, failures: list[str], interval: float = 0.2) -> None:
    """wait_until, a timeout noted in `failures` (the scenario goes on to report what it saw)."""
    try:
        wait_until(cond, timeout, what, interval=interval)
    except TimeoutError as e:
        failures.append(str(e))


def _send_all(watch: Watch, items: list[tuple[str, bytes]]) -> None:
    infos = [watch.publish(t, p, qos=1) for t, p in items]
    for info in infos[-20:]:
        info.wait_for_publish(30)


def node_serves(node: NodeProcess, watch: Watch, inbox: Inbox, rt: str) -> bool:
    """The node still creates and deletes a module (answered by `exited: deleted`)."""
    u = str(_uuid.uuid4())
    mark = len(inbox)
    watch.publish(f"{REALM}/proc/control/{rt}", module_create(u, rt)).wait_for_publish(10)
    watch.publish(f"{REALM}/proc/control/{rt}", module_delete(u)).wait_for_publish(10)
    try:
        inbox.wait(lambda t, p: js(p).get("action") == "exited" and js(p)["data"].get("uuid") == u, 30, since=mark)
        return True
    except TimeoutError:
        return False


def live_control_node(n: int, r: random.Random, *, node: NodeProcess, watch: Watch, inbox: Inbox, errlog: ErrLog, **_unused: Any) -> dict[str, Any]:
    rt = node.runtime_uuids[sorted(node.runtime_uuids)[0]]
    topic = f"{REALM}/proc/control/{rt}"
    watch.publish(topic, module_create("fz-duplicate", rt)).wait_for_publish(10)
    wait_until(lambda: "fz-duplicate" in node.output(), 20, "the original of the duplicates created")
    mark = len(errlog)
    kinds: dict[str, int] = {}
    items = []
    for _ in range(n):
        raw, kind = gen.bad_control(r, rt)
        kinds[kind] = kinds.get(kind, 0) + 1
        items.append((topic, raw))
    t0 = time.monotonic()
    _send_all(watch, items)
    failures: list[str] = []
    _await(lambda: len(errlog.since(mark, "error")) >= n, 60 + n / 200, f"{n} errors on proc/log", failures)
    errs = errlog.since(mark, "error")
    unclear = [e for e in errs if not isinstance(e.get("error"), str) or len(e["error"]) < 10]
    if unclear:
        failures.append(f"{len(unclear)} errors without a readable description, e.g. {unclear[0]}")
    serves = node_serves(node, watch, inbox, rt)
    if not serves:
        failures.append("the node does not create/delete modules after the bad control messages")
    watch.publish(topic, module_delete("fz-duplicate")).wait_for_publish(10)
    return {"cases": n, "errors": len(errs), "silent": max(0, n - len(errs)), "rate_per_s": round(n / (time.monotonic() - t0)),
            "serves_after": serves, "failures": failures}


def live_control_orch(n: int, r: random.Random, *, orch: OrchestratorProc, watch: Watch, errlog: ErrLog, **_unused: Any) -> dict[str, Any]:
    """The orchestrator's own control topic: every message answered with an error `description`."""
    mark = len(errlog)
    items = []
    for _ in range(n):
        raw, kind = gen.bad_control(r, "no-such-runtime")
        if kind == "duplicate" or kind == "delete_unknown":
            raw = b"\xfe" + raw  # the orchestrator refuses these differently; keep every case invalid
        items.append((f"{REALM}/proc/control", raw))
    _send_all(watch, items)
    failures: list[str] = []
    _await(lambda: len(errlog.since(mark, "description")) >= n, 60 + n / 100, f"{n} orchestrator errors", failures)
    errs = errlog.since(mark, "description")
    ok = orch.get_status("/api/status/")[0] == 200
    if not ok:
        failures.append("the orchestrator does not answer REST after the bad control messages")
    return {"cases": n, "errors": len(errs), "silent": max(0, n - len(errs)), "failures": failures}


def live_channel_open(n: int, r: random.Random, *, node: NodeProcess, watch: Watch, inbox: Inbox, errlog: ErrLog, **_unused: Any) -> dict[str, Any]:
    rt = node.runtime_uuids[sorted(node.runtime_uuids)[0]]
    per = 50
    seen = [len(node._out), 0]  # lines of the node's log looked at, "opened channel" lines among them

    def opened() -> int:
        # incremental: the log holds 65 KB lines here, joining it all on every poll would starve the
        # thread that reads the node's output pipe, and a full pipe stalls the node itself
        lines = node._out
        end = len(lines)
        seen[1] += sum(1 for line in lines[seen[0]:end] if b"opened channel" in line)
        seen[0] = end
        return seen[1]
    mark = len(errlog)
    sent = 0
    mods = []
    while sent < n:
        k = min(per, n - sent)
        opens = [list(gen.open_case(r)) for _ in range(k)]
        u = str(_uuid.uuid4())
        mods.append(u)
        watch.publish(f"{REALM}/proc/control/{rt}", module_create(
            u, rt, channels=[{"path": "g", "mode": "rw", "topic": "fz/g"}], open=opens)).wait_for_publish(10)
        sent += k
        if len(mods) >= 20:  # stay under max_nmodules: delete as we go
            for m in mods:
                watch.publish(f"{REALM}/proc/control/{rt}", module_delete(m))
            mods = []
    for m in mods:
        watch.publish(f"{REALM}/proc/control/{rt}", module_delete(m)).wait_for_publish(10)

    def accounted() -> int:
        return opened() + len([e for e in errlog.since(mark, "error") if "channel refused" in str(e["error"])])
    failures: list[str] = []
    _await(lambda: accounted() >= n, 60 + n / 100, f"{n} opens answered (opened or refused)", failures, interval=0.5)
    refused = len([e for e in errlog.since(mark, "error") if "channel refused" in str(e["error"])])
    serves = node_serves(node, watch, inbox, rt)
    if not serves:
        failures.append("the node does not create/delete modules after the channel fuzz")
    return {"cases": n, "opened": opened(), "refused": refused,
            "unanswered": max(0, n - accounted()), "serves_after": serves, "failures": failures}


def _stopped_worker(node: NodeProcess, name: str) -> int:
    pid = wait_until(lambda: workers_by_name(node.pid).get(name), 30, f"worker {name}")
    time.sleep(1.3)  # past startsecs: a later kill is a crash of a RUNNING worker, not a failed start
    pid = workers_by_name(node.pid)[name]
    os.kill(pid, signal.SIGSTOP)  # no second producer on its ring while we write it
    return int(pid)


def live_ipc_records(n: int, r: random.Random, *, node: NodeProcess, watch: Watch, inbox: Inbox, **_unused: Any) -> dict[str, Any]:
    """Write into the receive ring of a live supervisor as its (stopped) `test/reg` worker would."""
    from ipc.backends import get_backend
    from ipc.endpoint import names
    from ipc.ring import HEADER, Ring

    be = get_backend("posix")
    name = sorted(node.runtime_uuids)[1]
    slot = 1
    sid = str(node.pid)
    failures: list[str] = []
    pid = _stopped_worker(node, name)
    block = be.open_shm(names(sid, slot)["rx"])
    ring = Ring(block.buf, "fuzz-rx")
    up = be.open_queue(names(sid)["up"])
    framed = 0
    try:
        for i in range(n):
            h1 = r.choice([0x80 | r.randint(0, 127), r.randint(0, 127), r.randint(0, 255)])
            h2 = r.randint(0, 10) if r.random() < 0.7 else r.randint(0, 255)
            p = r.choice([gen.rbytes(r, 100), orjson.dumps({gen.rstr(r): gen.junk(r)}), b"\x80" + gen.rbytes(r, 30),
                          bytes([r.randint(0, 255), r.randint(0, 255)]) + gen.rstr(r).encode(), b"", b"\x00" * 3])
            ring.write(h1, h2, p, timeout=10)
            framed += 1
            if i % 200 == 0:
                up.send(b"\x01\x00", 0)
        up.send(b"\x01\x00", 0)
        wait_until(lambda: ring.used() == 0, 30, "the supervisor drained the fuzzed records")
    except Exception as e:
        failures.append(f"writing framed records: {type(e).__name__}: {e}")
    finally:
        ring.close()
        block.close()
    os.kill(pid, signal.SIGKILL)  # its ring position is stale now: let the supervisor replace it
    corrupt = 0
    recovered = 0
    for kind in ["len_past_tail", "tail_past_capacity", "tail_below_head", "record_crosses_end", "pad_mid"]:
        if node.proc is None or node.proc.poll() is not None:
            break
        try:
            pid = _stopped_worker(node, name)
        except TimeoutError as e:
            failures.append(f"{kind}: {e}")
            break
        block = be.open_shm(names(sid, slot)["rx"])
        buf = block.buf
        ring = Ring(buf, "fuzz-rx")
        q = buf[:HEADER].cast("Q")
        head, tail, cap = int(q[8]), int(q[16]), int(q[1])
        data = buf[HEADER:HEADER + cap]
        off = tail % cap
        if kind == "len_past_tail":
            data[off:off + 6] = (4000).to_bytes(4, "little") + b"\x80\x01"
            q[16] = tail + 8
        elif kind == "tail_past_capacity":
            q[16] = head + cap + 4096
        elif kind == "tail_below_head":
            q[16] = head - 8 if head >= 8 else 2 ** 64 - 8
        elif kind == "record_crosses_end":
            data[off:off + 6] = (cap).to_bytes(4, "little") + b"\x80\x01"
            q[16] = tail + 16
        else:
            data[off:off + 6] = (0xFFFFFFF0).to_bytes(4, "little") + b"\x00\x00"
            q[16] = tail + 8
        del data, q
        ring.close()
        block.close()
        up.send(b"\x01\x00", 0)
        corrupt += 1
        try:
            wait_until(lambda: (p := workers_by_name(node.pid).get(name)) and p != pid, 20, f"{kind}: the worker replaced")
            recovered += 1
        except TimeoutError as e:
            failures.append(str(e))
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    up.close()
    alive_after = node.proc is not None and node.proc.poll() is None
    if not alive_after:
        failures.append(f"the supervisor died from a corrupt ring (exit {node.proc.returncode if node.proc else None}):\n"
                        + "\n".join(node.output().splitlines()[-8:]))
    return {"cases": framed + corrupt, "framed_records": framed, "corrupt_rings": corrupt, "worker_replaced": recovered,
            "supervisor_alive": alive_after, "failures": failures}


def live_rest(n: int, r: random.Random, *, orch: OrchestratorProc, **_unused: Any) -> dict[str, Any]:
    failures: list[str] = []
    statuses: dict[int, int] = {}
    unclear = 0
    conn = http.client.HTTPConnection("127.0.0.1", orch.http_port, timeout=10)
    for i in range(n):
        if r.random() < 0.03:
            req = gen.raw_http(r, orch.http_port)
            try:
                with socket.create_connection(("127.0.0.1", orch.http_port), timeout=10) as s:
                    s.sendall(req)
                    s.shutdown(socket.SHUT_WR)
                    line = s.recv(200).split(b"\r\n", 1)[0]
                code = int(line.split()[1]) if len(line.split()) > 1 and line.split()[1].isdigit() else 0
            except OSError:
                code = 0  # the server may just close a malformed connection
            statuses[code] = statuses.get(code, 0) + 1
            if code >= 500 and code != 501 and code != 505:
                failures.append(f"raw request {req[:60]!r} -> {code}")
            continue
        path = gen.rest_path(r)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", orch.http_port, timeout=10)
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
            except (http.client.HTTPException, OSError) as e:
                failures.append(f"GET {path[:80]!r}: no answer ({e})")
                continue
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
        if resp.status >= 500:
            failures.append(f"GET {path[:100]!r} -> {resp.status} {body[:200]!r}")
        elif resp.status >= 400:
            try:
                err = orjson.loads(body).get("error")
            except (orjson.JSONDecodeError, AttributeError):
                err = None
            if not isinstance(err, str) or not err:
                unclear += 1
                if unclear <= 3:
                    failures.append(f"GET {path[:80]!r} -> {resp.status} without a JSON error: {body[:120]!r}")
    conn.close()
    up = orch.get_status("/api/status/")[0] == 200
    if not up:
        failures.append("the orchestrator does not answer after the REST fuzz")
    return {"cases": n, "statuses": dict(sorted(statuses.items())), "unclear_errors": unclear, "failures": failures[:10]}
