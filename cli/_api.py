"""What the operator scripts share: config loading, the orchestrator's REST API (reads)
and MQTT (writes), and turning every mistake a person can make into one clear line.

`run/stop/list/status` read the orchestrator over HTTP and write to it via MQTT, like
the seed's tools. A `CliError` is printed as `manage.py SCRIPT: message` with exit 1.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

from common.config import Config, ConfigError, load_config
from common import usage
from common.logs import parse_level, setup_logging
from common.usage import UsageError, expand_multi, number
from common.wire import Topics, encode, envelope

log = logging.getLogger("cli")


class CliError(Exception):
    """A mistake or an unreachable service, said in one line."""


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
    """Decorate a script's main: a usage mistake -> one line on stderr and exit 2, CliError -> exit 1."""
    return usage.guard(f"manage.py {name}", (CliError,), 1)


class Api:
    """The orchestrator's REST API at `url` (`http://host:port`)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    @classmethod
    def from_opts(cls, opts: dict[str, Any], cfg: Config) -> "Api":
        return cls(opts.get("--url") or cfg.orchestrator_url)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        """GET a JSON answer; None on 404; CliError when the orchestrator cannot be reached."""
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            try:
                msg = json.loads(e.read()).get("error", e.reason)
            except ValueError:
                msg = e.reason
            raise CliError(f"orchestrator at {self.url} answered {e.code} for {path}: {msg}") from None
        except urllib.error.URLError as e:
            reason = e.reason.strerror if isinstance(e.reason, OSError) and e.reason.strerror else e.reason
            raise CliError(f"cannot reach the orchestrator at {url}: {reason} (is `make orchestrator` running? "
                           f"config keys `http`/`http_port`, or --url)") from None
        except (OSError, socket.timeout) as e:
            raise CliError(f"cannot reach the orchestrator at {url}: {e}") from None
        except ValueError as e:
            raise CliError(f"orchestrator at {url} sent something that is not JSON: {e}") from None

    def runtime(self, q: str) -> dict[str, Any] | None:
        return self.get(f"/api/runtimes/{urllib.parse.quote(q, safe='')}/")

    def module(self, q: str) -> dict[str, Any] | None:
        return self.get(f"/api/modules/{urllib.parse.quote(q, safe='')}/")

    def runtimes(self, queued: int = 100) -> list[dict[str, Any]]:
        """Every alive runtime (all pages)."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.get("/api/runtimes/", {"start": len(out), "count": 1000, "queued": queued})
            if page is None:
                raise CliError(f"orchestrator at {self.url} has no /api/runtimes/ (is that URL an orchestrator?)")
            out.extend(page["results"])
            if not page["results"] or len(out) >= page["count"]:
                return out


class Session:
    """An MQTT connection for the scripts' writes; optionally collects errors from proc/log."""

    def __init__(self, cfg: Config, timeout: float = 10.0) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.cfg = cfg
        self.timeout = timeout
        self.where = f"{cfg.mqtt}:{cfg.mqtt_port}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._refused: list[str] = []
        self._errors: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, cl: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            self._refused.append(str(rc))
        self._connected.set()

    def _on_message(self, cl: Any, u: Any, msg: Any) -> None:
        try:
            m = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(m, dict) and isinstance(m.get("data"), dict):
            with self._lock:
                oid = m.get("object_id")
                if isinstance(oid, str):  # ours reports on both log topics: take each report once
                    if oid in self._seen:
                        return
                    self._seen.add(oid)
                self._errors.append(m["data"])

    def __enter__(self) -> "Session":
        c, cfg = self.client, self.cfg
        if cfg.mqtt_username:
            try:
                c.username_pw_set(cfg.mqtt_username, cfg.password())
            except ConfigError as e:
                raise CliError(f"bad config: {e}") from None
        if cfg.use_ssl:
            import ssl
            c.tls_set(ca_certs=cfg.ssl_ca, certfile=cfg.ssl_cert, keyfile=cfg.ssl_key, cert_reqs=ssl.CERT_REQUIRED)
            c.tls_insecure_set(cfg.ssl_insecure)
        try:
            c.connect(cfg.mqtt, cfg.mqtt_port, keepalive=30)
        except (OSError, ValueError) as e:
            raise CliError(f"cannot reach the MQTT broker at {self.where}: {getattr(e, 'strerror', None) or e}"
                           " (config keys `mqtt`/`mqtt_port`)") from None
        c.loop_start()
        try:
            if not self._connected.wait(self.timeout):
                raise CliError(f"MQTT broker at {self.where} did not answer the connect within {self.timeout:g} s")
            if self._refused:
                raise CliError(f"MQTT broker at {self.where} refused the connection: {self._refused[0]}")
        except BaseException:
            self.close()
            raise
        return self

    def watch_log(self) -> None:
        """Collect what the orchestrator reports from now on (see `errors()`): on proc/log (ours)
        and proc/log/orchestrator (the original's, and ours too)."""
        t = Topics(self.cfg.realm)
        self.client.subscribe([(t.log, 1), (t.orchestrator_log, 1)])
        if not self._subscribed.wait(self.timeout):
            raise CliError(f"MQTT broker at {self.where} did not confirm a subscription within {self.timeout:g} s")

    def errors(self) -> list[dict[str, Any]]:
        with self._lock:
            out, self._errors = self._errors, []
        return out

    def publish(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish (topic, envelope) pairs with QoS 1 and wait until the broker has them all."""
        infos = [self.client.publish(topic, encode(msg), qos=1) for topic, msg in messages]
        for info in infos:
            info.wait_for_publish(self.timeout)
            if not info.is_published():
                raise CliError(f"MQTT broker at {self.where} did not acknowledge a publish within {self.timeout:g} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __exit__(self, *exc: object) -> None:
        self.close()


def publish(cfg: Config, messages: list[tuple[str, dict[str, Any]]], timeout: float = 10.0) -> None:
    """Publish (topic, envelope) pairs with QoS 1 on a short-lived connection."""
    with Session(cfg, timeout) as s:
        s.publish(messages)


def topics(cfg: Config) -> Topics:
    return Topics(cfg.realm)


__all__ = ["Api", "CliError", "UsageError", "expand_multi", "Session", "config", "number", "envelope", "guard", "parse", "publish", "setup", "topics"]
