"""The node's Prometheus endpoint (issue #27; off by default: `start.py --metrics-port PORT`, on
127.0.0.1). `GET /metrics` answers in the text format 0.0.4:

- `silverline_node_worker_state{runtime,state}` (1 for the present state: STOPPED, STARTING,
  RUNNING, BACKOFF, STOPPING, FATAL), `silverline_node_worker_starts_total{runtime}`;
- `silverline_node_modules{runtime}`: modules in the worker's slots;
- `silverline_node_ring_messages_total{runtime,direction}` and `..._bytes_total` (`to_worker`,
  `from_worker`): what went through the worker's shared-memory rings;
- `silverline_node_backpressure_episodes_total{runtime}` (its input ring was full and messages
  waited), `silverline_node_backpressure_waiting{runtime}` (messages waiting now),
  `silverline_node_backpressure_dropped_total{runtime}` (channel messages refused over the limit).

The answer is built on an HTTP thread from counters the supervisor's loop updates (plain ints: a
read is never torn). The supervisor stays single-threaded otherwise, but with a second thread alive
the IPC idle strategy does not spin (ipc/idle.py): a few microseconds more per wake-up while the
endpoint is on, which is why it is off by default.
"""
from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence

from supervisor.states import WorkerState
from supervisor.workers import Worker

log = logging.getLogger("mgr")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def text(node: str, workers: Sequence[Worker]) -> bytes:
    out: list[str] = []

    def family(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        out.extend([f"# HELP {name} {help_}", f"# TYPE {name} {kind}"])
        out.extend(f"{name}{{{lab}}} {v:g}" for lab, v in samples)

    def lab(w: Worker, **extra: str) -> str:
        labels = {"node": node, "runtime": w.name, **extra}
        return ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels.items())

    family("silverline_node_worker_state", "gauge", "1 for the worker's present state.",
           [(lab(w, state=s.name), 1.0 if w.state is s else 0.0) for w in workers for s in WorkerState])
    family("silverline_node_worker_starts_total", "counter", "Times the worker process was started.",
           [(lab(w), w.starts) for w in workers])
    family("silverline_node_modules", "gauge", "Modules in the worker's slots.", [(lab(w), len(w.modules)) for w in workers])
    family("silverline_node_ring_messages_total", "counter", "Messages through the worker's rings.",
           [(lab(w, direction=d), n) for w in workers for d, n in (("to_worker", w.to_worker), ("from_worker", w.from_worker))])
    family("silverline_node_ring_bytes_total", "counter", "Payload bytes through the worker's rings.",
           [(lab(w, direction=d), n) for w in workers
            for d, n in (("to_worker", w.to_worker_bytes), ("from_worker", w.from_worker_bytes))])
    family("silverline_node_backpressure_episodes_total", "counter", "Times the worker's input ring was full.",
           [(lab(w), w.backlog.episodes) for w in workers])
    family("silverline_node_backpressure_waiting", "gauge", "Messages waiting for room in the worker's ring.",
           [(lab(w), len(w.backlog)) for w in workers])
    family("silverline_node_backpressure_dropped_total", "counter", "Channel messages refused over the backlog limit.",
           [(lab(w), w.backlog.dropped) for w in workers])
    return ("\n".join(out) + "\n").encode()


class MetricsServer:
    """`GET /metrics` on 127.0.0.1:`port` (0: a free one, see `port` after start)."""

    def __init__(self, node: str, workers: Sequence[Worker], port: int, bind: str = "127.0.0.1") -> None:
        self.node, self.workers = node, workers

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0].rstrip("/") != "/metrics":
                    body, code, ctype = b"try /metrics\n", 404, "text/plain"
                else:
                    body, code, ctype = text(outer.node, outer.workers), 200, CONTENT_TYPE
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer((bind, port), Handler)
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        self._thread = threading.Thread(target=self.http.serve_forever, name="node-metrics", daemon=True)

    def start(self) -> "MetricsServer":
        self._thread.start()
        log.info("metrics on http://127.0.0.1:%d/metrics", self.port)
        return self

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
