"""Everything a supervisor run is configured with (from `start.py` flags over config.json)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from common.config import Config


@dataclass
class RuntimeChoice:
    """One `-r` runtime of this node."""

    registry_name: str  # e.g. "test/echo"
    full_name: str  # e.g. "node1.echo" (or "node1" when it is the only one)
    cpus: list[int] | None = None


@dataclass
class Settings:
    name: str
    runtimes: list[RuntimeChoice]
    config: Config = field(default_factory=Config)
    log_level: int = logging.INFO
    state_dir: str | None = None
    manager_uuid: str | None = None
    reg_timeout: float = 5.0  # seconds to wait for each orchestrator answer (the seed: 5)
    start_retries: int = 3  # quick deaths in a row before FATAL
    backoff: float = 1.0  # first restart delay; doubles per failed start, capped at 30 s
    startsecs: float = 1.0  # a worker alive this long counts as started
    stop_timeout: float = 5.0  # graceful stop: wait this long for workers before SIGKILL
    worker_timeout: float = 0.0  # a RUNNING worker silent this long is aborted (SIGABRT, then SIGKILL); 0 = off
    ka_interval: float = 10.0  # keepalive period until the orchestrator says otherwise (0 = never)
    ring_capacity: int = 1 << 20
    backend: str = "posix"
    spin: float = 200e-6  # IPC idle strategy: the adaptive spin's cap in seconds (ipc/idle.py); 0 = always sleep
    access_control: bool = True  # channels: only granted topics plus $SL/
    runtime_settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # config.json "runtimes"
    stdin_commands: bool = True  # `q`/`quit` on a terminal stdin stops the node
    spool_max: int = 256 << 20  # bytes of results the spool holds for a collector (STATE_DIR/NAME.spool); 0 = no spool
    logdir: str | None = None  # -l: also log to LOGDIR/NAME.log
    metrics_port: int | None = None  # --metrics-port: the node's Prometheus endpoint (supervisor/metrics.py); None = off
