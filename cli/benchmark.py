"""Run (runtimes x files x engines) benchmarking: one module per combination, sent to the orchestrator.

Each module goes to `{realm}/proc/control` as a create request with its runtime as parent; the
orchestrator queues them (a benchmarking runtime runs one module at a time). Results arrive
as profiling messages: run the collector (`make profile`) to keep them, `manage.py report`
to summarise. With --wait the script shows progress until every module has exited.

Usage:
    manage.py benchmark [options] (-f FILE)... (-r RUNTIME)... [--engine ENGINE]...
    manage.py benchmark -h | --help

Options:
    -f, --file FILE        Module file (path on the nodes); repeat for several.
    -r, --runtime RUNTIME  Runtime name, uuid or uuid suffix; repeat for several.
    --engine ENGINE        Engine (see `manage.py engines`); repeat: one module per engine [default: wasmtime].
    -k, --repeat N         Runs per module [default: 1].
    --limit SEC            Time limit of a whole module (seconds).
    --ilimit SEC           Time limit of each run (seconds).
    --argv ARGS            Arguments of every module (shell-split).
    --argfile FILE         JSON object: file (path or base name) -> arguments (string or list);
                           in norepeat mode a list of argument lists, each run once.
    --norepeat             One run per argument list of --argfile instead of --repeat runs.
    --shuffle              Shuffle the order of all modules.
    --eshuffle             Shuffle the order of the engines of each (runtime, file).
    --max_seed N           Seeded runtimes: seeds are drawn from 0..N-1.
    --dirmode DIR          Seeded runtimes: each run gets a file of DIR picked by its seed.
    --scriptmode SCRIPT    Seeded runtimes: a Python script turns each seed into arguments.
    --interference N       Run the files N at a time (`a:b` modules for benchmarking/if runtimes).
    --stdout PATH          Keep the modules' output in PATH on the node (default: discarded).
    --wait                 Wait until every module has exited, showing progress.
    --timeout SEC          How long --wait waits [default: 86400].
    --dry-run              Print the create messages (JSON lines) and send nothing.
    -c, --cfg PATH         Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL              Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL    Log level [default: WRN].
"""
from __future__ import annotations

import json
import os
import random
import shlex
import sys
import threading
import time
from typing import Any

from cli._api import Api, CliError, config, envelope, guard, number, parse, publish, setup, topics
from common.config import Config
from common.wire import new_uuid

SUMMARY = "Run (runtimes x files x engines) benchmarking."


def load_argfile(path: str, norepeat: bool) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise CliError(f"--argfile {path}: {e.strerror}") from None
    except ValueError as e:
        raise CliError(f"--argfile {path}: not JSON: {e}") from None
    if not isinstance(data, dict):
        raise CliError(f"--argfile {path}: expected an object mapping file -> arguments")
    out: dict[str, Any] = {}
    for k, v in data.items():
        if norepeat:
            if not isinstance(v, list) or not v:
                raise CliError(f"--argfile {path}: with --norepeat, {k!r} needs a list of argument lists")
            out[k] = [shlex.split(a) if isinstance(a, str) else [str(x) for x in a] for a in v]
        else:
            out[k] = shlex.split(v) if isinstance(v, str) else [str(x) for x in v]
    return out


def build_modules(opts: dict[str, Any], runtimes: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """The create `data` of every module, in sending order."""
    files: list[str] = list(opts["--file"])
    n_if = number(opts, "--interference", int, 1)
    if n_if and n_if > 1:
        if len(files) < n_if:
            raise CliError(f"--interference {n_if} needs at least {n_if} files, got {len(files)}")
        files = [":".join(files[i:i + n_if]) for i in range(0, len(files) - n_if + 1, n_if)]
    engines_: list[str] = list(dict.fromkeys(opts["--engine"] or ["wasmtime"]))
    norepeat = bool(opts["--norepeat"])
    if norepeat and not opts["--argfile"]:
        raise CliError("--norepeat needs --argfile (the argument lists to run once each)")
    argfile = load_argfile(opts["--argfile"], norepeat) if opts["--argfile"] else {}
    base_argv = shlex.split(opts["--argv"]) if opts["--argv"] else []
    common: dict[str, Any] = {}
    if not norepeat:
        common["repeat"] = number(opts, "--repeat", int, 1)
    for key, name, kind in (("--limit", "limit", float), ("--ilimit", "ilimit", float), ("--max_seed", "max_seed", int)):
        v = number(opts, key, kind, 0)
        if v is not None:
            common[name] = v
    for key, name in (("--dirmode", "dirmode"), ("--scriptmode", "scriptmode"), ("--stdout", "stdout")):
        if opts[key]:
            common[name] = opts[key]
    out: list[dict[str, Any]] = []
    for rt in runtimes:
        for f in files:
            argv: Any = argfile.get(f, argfile.get(os.path.basename(f), base_argv)) if argfile else base_argv
            if norepeat and f not in argfile and os.path.basename(f) not in argfile:
                raise CliError(f"--argfile has no argument lists for {f!r}")
            engs = list(engines_)
            if opts["--eshuffle"]:
                rng.shuffle(engs)
            for e in engs:
                uuid = new_uuid()
                name = f"{':'.join(os.path.basename(x) for x in f.split(':'))}@{e}"
                args = dict(common, engine=e, argv=argv)
                out.append({"type": "module", "uuid": uuid, "name": name, "parent": rt["uuid"], "file": f, "args": args})
    if opts["--shuffle"]:
        rng.shuffle(out)
    return out


def resolve_runtimes(opts: dict[str, Any], cfg: Config) -> list[dict[str, Any]]:
    api = Api.from_opts(opts, cfg)
    found: list[dict[str, Any]] = []
    for q in opts["--runtime"]:
        for part in q.split(","):
            rt = api.runtime(part.strip())
            if rt is None:
                raise CliError(f"runtime {part!r} is unknown to the orchestrator at {api.url} (see `manage.py list`)")
            found.append(rt)
    return found


class ExitWatcher:
    """Subscribes to `{realm}/proc/control/+` before the creates go out; counts our modules' exits."""

    def __init__(self, cfg: Config, uuids: set[str]) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.uuids = uuids
        self.exited: dict[str, dict[str, Any]] = {}
        self.cv = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if cfg.mqtt_username:
            self.client.username_pw_set(cfg.mqtt_username, cfg.password())
        ready = threading.Event()
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(f"{cfg.realm}/proc/control/+", 1)
        try:
            self.client.connect(cfg.mqtt, cfg.mqtt_port)
        except OSError as e:
            raise CliError(f"cannot reach the MQTT broker at {cfg.mqtt}:{cfg.mqtt_port}: {e}") from None
        self.client.loop_start()
        if not ready.wait(10):
            self.close()
            raise CliError(f"could not subscribe on the broker at {cfg.mqtt}:{cfg.mqtt_port}")

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        try:
            m = json.loads(msg.payload)
            d = m.get("data") or {}
        except (ValueError, AttributeError):
            return
        if m.get("action") == "exited" and d.get("uuid") in self.uuids:
            with self.cv:
                self.exited[d["uuid"]] = d
                self.cv.notify_all()

    def wait(self, timeout: float, names: dict[str, str]) -> None:
        deadline = time.monotonic() + timeout
        total = len(self.uuids)
        tty = sys.stderr.isatty()
        shown = -1
        with self.cv:
            while len(self.exited) < total:
                if len(self.exited) != shown:
                    shown = len(self.exited)
                    line = f"benchmark: {shown}/{total} modules done"
                    print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CliError(f"{total - len(self.exited)} of {total} modules had not exited after {timeout:g} s")
                self.cv.wait(min(left, 1.0))
        print(("\r" if tty else "") + f"benchmark: {total}/{total} modules done", file=sys.stderr)
        for uuid, d in self.exited.items():
            st = d.get("status") or {}
            if st.get("reason") != "exited" or st.get("error"):
                print(f"  {names.get(uuid, uuid)}: {st.get('reason')} {st.get('error') or ''}".rstrip(), file=sys.stderr)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@guard("benchmark")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "benchmark", argv)
    setup(opts)
    cfg = config(opts)
    rng = random.Random()
    if opts["--dry-run"]:
        fake = [{"uuid": r, "name": r} for r in opts["--runtime"]]
        for m in build_modules(opts, fake, rng):
            print(json.dumps(m))
        return 0
    runtimes = resolve_runtimes(opts, cfg)
    modules = build_modules(opts, runtimes, rng)
    t = topics(cfg)
    watcher = ExitWatcher(cfg, {m["uuid"] for m in modules}) if opts["--wait"] else None
    try:
        publish(cfg, [(t.control(), envelope("create", m)) for m in modules])
        print(f"benchmark: sent {len(modules)} modules ({len(runtimes)} runtimes x {len(opts['--file'])} files x "
              f"{len(set(opts['--engine'] or ['wasmtime']))} engines)", file=sys.stderr)
        for m in modules:
            print(f"created {m['name']} {m['uuid']} -> {m['parent']}")
        if watcher is not None:
            watcher.wait(number(opts, "--timeout", float, 0), {m["uuid"]: m["name"] for m in modules})
    finally:
        if watcher is not None:
            watcher.close()
    return 0
