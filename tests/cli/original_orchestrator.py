"""A stand-in for the original SilverLine orchestrator (Django, which cannot run here) for the CLI
compatibility tests: its REST answers and its MQTT handling, as docs/compatibility.md, "Seen beside the original tools",
records them. REST records are `model_to_dict` rows (tests/helpers/original.py: no `type`,
one-letter states); a `create_batch` reads `data.parent`; errors go to `{realm}/proc/log/orchestrator`
as `{"desc", "data"}`. Only what the CLI tests need; the real broker carries the messages.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import original as O

R = "realm"


class OriginalOrchestrator:
    def __init__(self, broker_port: int) -> None:
        self.runtimes: dict[str, dict[str, Any]] = {}
        self.modules: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []  # every request seen on proc/control
        self.lock = threading.Lock()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker_port)
        self.client.subscribe([(f"{R}/proc/control", 2), (f"{R}/proc/control/+", 2)])
        self.client.loop_start()
        if not subscribed.wait(10):
            self.close()
            raise TimeoutError("the stand-in orchestrator could not subscribe")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def add_runtime(self, rt: dict[str, Any]) -> None:
        with self.lock:
            self.runtimes[rt["uuid"]] = rt

    def add_module(self, m: dict[str, Any]) -> None:
        with self.lock:
            self.modules[m["uuid"]] = m
            rt = self.runtimes[m["parent"]]
            (rt["queued"] if m["status"] == "Q" else rt["children"]).append(
                {k: m[k] for k in ("uuid", "name", "parent", "file", "status")})

    # -- MQTT (views.py / pubsub of the original, reduced) --------------------------------
    def _lookup(self, table: dict[str, dict[str, Any]], q: str) -> dict[str, Any] | None:
        if q in table:
            return table[q]
        alive = [x for x in table.values() if x["status"] == "A"]
        return next((x for x in alive if x["name"] == q), None) or next((x for x in alive if x["uuid"].endswith(q)), None)

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        m = json.loads(msg.payload)
        if msg.topic != f"{R}/proc/control" or m.get("type") != "req":
            return
        with self.lock:
            self.requests.append(m)
            d = m["data"]
            if m["action"] == "create":
                self._create(d, d.get("parent"))
            elif m["action"] == "create_batch":
                for mod in d["modules"]:
                    self._create(mod, d["parent"])
            elif m["action"] == "delete":
                mod = self._lookup(self.modules, d["uuid"])
                if mod is not None:
                    mod["status"] = "E"

    def _create(self, d: dict[str, Any], parent: str | None) -> None:
        rt = self._lookup(self.runtimes, parent or "")
        if rt is None:
            self._error("invalid runtime Name/UUID", parent)
        elif d["name"] == "dup":  # the shape of the original's DuplicateUUID report
            self._error("duplicate module UUID; request ignored", d)
        else:
            mod = O.rest_module(d["uuid"], d["name"], rt["uuid"], d["file"], args=d.get("args"), index=len(self.modules) + 1)
            self.modules[mod["uuid"]] = mod
            rt["children"].append({k: mod[k] for k in ("uuid", "name", "parent", "file", "status")})

    def _error(self, desc: str, data: Any) -> None:
        self.client.publish(f"{R}/proc/log/orchestrator", json.dumps(O.error_report(desc, data)), qos=2)

    # -- REST ---------------------------------------------------------------------------
    def _answer(self, path: str) -> tuple[int, Any]:
        parts = [p for p in path.split("?")[0].split("/") if p]
        with self.lock:
            if parts == ["api", "runtimes"]:
                rts = [rt for rt in self.runtimes.values() if rt["status"] == "A"]
                return 200, {"count": len(rts), "start": 0, "results": rts}
            if len(parts) == 3 and parts[:2] == ["api", "runtimes"]:
                rt = self._lookup(self.runtimes, parts[2])
                return (200, rt) if rt else (404, None)
            if len(parts) == 3 and parts[:2] == ["api", "modules"]:
                mod = self._lookup(self.modules, parts[2])
                return (200, mod) if mod else (404, None)
        return 404, None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                code, body = owner._answer(self.path)
                data = json.dumps(body).encode() if body is not None else b"<h1>Not Found</h1>"
                self.send_response(code)
                self.send_header("Content-Type", "application/json" if body is not None else "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
        self.http.shutdown()
        self.http.server_close()
