"""What the operator scripts share: config loading, the client library (`silverline/`: the
orchestrator's REST API for reads, MQTT for writes) and one-line errors (`common/usage.py`).

`run/stop/list/status` read the orchestrator over HTTP and write to it via MQTT, like the
seed's tools, through the same `silverline.Client` a script uses. A `CliError` (the library's
ClientError) is printed as `manage.py SCRIPT: message` with exit 1, a usage mistake with exit 2.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any, Callable

from benchmarking.analysis import AnalysisError
from common import usage
from common.config import Config, ConfigError, load_config
from common.logs import parse_level, setup_logging
from common.usage import UsageError, expand_multi, number
from common.wire import Topics, envelope
from silverline import Client, ClientError, Connection, Rest

log = logging.getLogger("cli")


CliError = ClientError  # a mistake or an unreachable service, said in one line (exit 1)


def parse(doc: str, name: str, argv: list[str], multi: tuple[str, ...] = (), options_first: bool = False) -> dict[str, Any]:
    """docopt over a usage written as `manage.py NAME ...` (common/usage.py: one-line usage errors);
    options in `multi` take several values after one flag, as in the seed."""
    return usage.parse(doc, f"manage.py {name}", argv, multi=multi, options_first=options_first)


def setup(opts: dict[str, Any], default_level: str = "WRN") -> None:
    level = opts.get("--verbose") or default_level
    try:
        setup_logging(parse_level(str(level)))
    except ValueError as e:
        raise UsageError(f"-v/--verbose: {e}") from None


def config(opts: dict[str, Any]) -> Config:
    """The config named by `--cfg` or $SL_CONFIG (must exist), else config.json or defaults."""
    path = opts.get("--cfg") or os.environ.get("SL_CONFIG") or None
    try:
        return load_config(path)
    except ConfigError as e:
        raise CliError(f"bad config: {e}") from None


def guard(name: str) -> Callable[[Callable[[list[str]], int]], Callable[[list[str]], int]]:
    """Decorate a script's main: a usage mistake -> one line on stderr and exit 2, CliError (or the
    analysis' AnalysisError, a problem with the collected data) -> exit 1."""
    return usage.guard(f"manage.py {name}", (CliError, AnalysisError), 1)


class Api(Rest):
    """The orchestrator's REST API (silverline.Rest) at --url or the config's `http`/`http_port`."""

    @classmethod
    def from_opts(cls, opts: dict[str, Any], cfg: Config) -> "Api":
        return cls(opts.get("--url") or cfg.orchestrator_url)



def begin(doc: str | None, name: str, argv: list[str], multi: tuple[str, ...] = ()) -> tuple[dict[str, Any], Config, Api]:
    """The start of a script that asks the orchestrator's REST API: its options, logging, the config and the Api."""
    opts = parse(doc or "", name, argv, multi=multi)
    setup(opts)
    cfg = config(opts)
    return opts, cfg, Api.from_opts(opts, cfg)

def client(opts: dict[str, Any], cfg: Config, timeout: float = 10.0) -> Client:
    """The client library's Client for the options' config and --url (one code path with scripts)."""
    return Client(cfg, url=opts.get("--url") or None, timeout=timeout)


class Session(Connection):
    """An MQTT connection that also collects what the orchestrator reports on proc/log (`errors()`)."""

    def __init__(self, cfg: Config, timeout: float = 10.0) -> None:
        super().__init__(cfg, timeout)
        self._reports: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._reports_lock = threading.Lock()

    def watch_log(self) -> None:
        """Collect reports from now on (returns once the broker confirmed): on proc/log (ours)
        and proc/log/orchestrator (the original's, and ours too)."""
        t = Topics(self.cfg.realm)
        self.subscribe([t.log, t.orchestrator_log], self._on_log)

    def _on_log(self, topic: str, payload: bytes) -> None:
        try:
            m = json.loads(payload)
        except ValueError:
            return
        if isinstance(m, dict) and isinstance(m.get("data"), dict):
            with self._reports_lock:
                oid = m.get("object_id")
                if isinstance(oid, str):  # ours reports on both log topics: take each report once
                    if oid in self._seen:
                        return
                    self._seen.add(oid)
                self._reports.append(m["data"])

    def errors(self) -> list[dict[str, Any]]:
        with self._reports_lock:
            out, self._reports = self._reports, []
        return out

    def refusal(self, match: Callable[[dict[str, Any]], bool]) -> str | None:
        """The orchestrator's description of why it refused a request of ours: the first report
        since the last call whose quoted request `data` matches; None when none did."""
        for err in self.errors():
            body = err.get("data")
            sent = body.get("data") if isinstance(body, dict) else None
            if isinstance(sent, dict) and match(sent):
                return str(err.get("description"))
        return None


def publish(cfg: Config, messages: list[tuple[str, dict[str, Any]]], timeout: float = 10.0) -> None:
    """Publish (topic, envelope) pairs with QoS 1 on a short-lived connection."""
    with Connection(cfg, timeout) as c:
        c.publish(list(messages))


def topics(cfg: Config) -> Topics:
    return Topics(cfg.realm)


__all__ = ["Api", "CliError", "Session", "UsageError", "client", "config", "envelope", "expand_multi", "guard", "number", "parse",
           "publish", "setup", "topics"]
