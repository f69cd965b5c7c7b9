"""Start a SilverLine node: the supervisor (node manager) and one worker process per runtime.

Usage:
    start.py -n NAME [-r RUNTIME]... [-g CPUS]... [options]
    start.py --list-runtimes
    start.py -h | --help

Options:
    -n NAME --name=NAME          Node name; with several runtimes each is named NAME.SHORT
                                 (SHORT: last part of the runtime name).
    -r RUNTIME --runtime=RUNTIME Runtimes to start, e.g. `-r linux test/echo` (default: linux).
    -c FILE --config=FILE        Node configuration (a missing config.json means embedded
                                 defaults: broker localhost:1883, realm `realm`).
    -v LEVEL --verbose=LEVEL     Log level: a number (seed: 20 = INFO) or CRI ERR WRN INF DBG TRA
                                 [default: INF].
    -g CPUS --cpus=CPUS          Pin workers: one value per runtime (`-g 0 1`), or one value for
                                 all; a value is a CPU list like `0,2` or `2-3`.
    -l DIR --logdir=DIR          Also write the log to DIR/NAME.log.
    --mqtt=HOST:PORT             MQTT broker (overrides config.json `mqtt`/`mqtt_port`); a comma-separated
                                 list: brokers to fail over between, in that order; `mqtt311://HOST:PORT`:
                                 that broker in MQTT 3.1.1 (docs/cluster.md).
    --realm=REALM                Realm (overrides config.json `realm`).
    --uuid=UUID                  Manager uuid (runtime uuids are derived from it).
    --state-dir=DIR              Where the node's uuids persist across restarts
                                 [default: ~/.local/state/silverline].
    --no-state                   Draw new uuids and store nothing (no result spool either).
    --spool-max=MB               The result spool (STATE_DIR/NAME.spool) keeps every profile until a
                                 collector acknowledges it has stored it, at most MB MiB; 0 = no spool
                                 (docs/benchmarking.md, "Delivery") [default: 256].
    --reg-timeout=SEC            Wait for each orchestrator answer [default: 5].
    --start-retries=N            Failed starts in a row before a runtime is FATAL [default: 3].
    --backoff=SEC                First restart delay, doubled per failed start [default: 1].
    --stop-timeout=SEC           Graceful stop deadline before SIGKILL [default: 5].
    --worker-timeout=SEC         A running worker that sends nothing (not even its keepalive) for
                                 SEC is aborted (SIGABRT: Python traceback in the log, then SIGKILL)
                                 and restarted; 0 = never [default: 0].
    --ka-interval=SEC            Keepalive period until the orchestrator sets one [default: 10].
    --spin=SEC                   IPC idle strategy: the most one idle moment spins before sleeping on
                                 the doorbell (adaptive: only while messages come close together and
                                 the peer is busy on another CPU, docs/ipc.md); 0 = always sleep
                                 [default: 0.0002].
    --backend=NAME               IPC backend: posix or sysv [default: posix].
    --no-access-control          Let modules open any topic (default: granted ones plus $SL/).
    --module-root=DIRS           Where a create message's `file` is looked up, a `:`-separated list
                                 (overrides config.json runtimes.NAME.module_root; default:
                                 <project>/build/modules only, never the working directory). Paths that
                                 leave these roots are refused.
    --metrics-port=PORT          Serve Prometheus metrics (worker states and starts, ring traffic,
                                 backpressure, modules) on http://127.0.0.1:PORT/metrics; off when
                                 not given (supervisor/metrics.py).
    --list-runtimes              List the known runtimes and exit.
    -h --help                    Show this help.

Stop with SIGTERM or Ctrl-C (or `q` Enter on a terminal) for a restart: the modules stay
resurrectable (the orchestrator re-creates them when the node is back). SIGUSR1 stops and ends
the modules (reported exited, not resurrected). Exit status 0 after a clean stop, 2 for a usage
error (unknown runtime, bad value, bad config file) or unusable state (a state directory it cannot
write, a corrupt identity file: never replaced), 4 when the identity is taken (another
supervisor holds the state dir's lock, or the orchestrator refused a duplicate).
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any

import runtimes
from common.broker import broker_list
from common.config import ConfigError, load_config
from common.exposure import warn_secrets_in_roots, warn_unauthenticated
from common.logs import EarlyRecords, parse_level, setup_logging
from common.usage import UsageError, number, parse
from runtimes.files import default_roots
from supervisor import availability
from supervisor.settings import RuntimeChoice, Settings

log = logging.getLogger("mgr")

MULTI = ("-r", "--runtime", "-g", "--cpus")  # the seed's nargs='+' options: `-r a b c`


def parse_cpus(text: str) -> list[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                cpus.update(range(lo, hi + 1))
            else:
                cpus.add(int(part))
        except ValueError:
            raise UsageError(f"-g/--cpus: {text!r} is not a CPU list (use e.g. 0,2 or 2-3)") from None
    available = os.sched_getaffinity(0)
    bad = sorted(c for c in cpus if c not in available)
    if bad:
        raise UsageError(f"-g/--cpus: CPU {bad} not available here (usable: {sorted(available)})")
    if not cpus:
        raise UsageError(f"-g/--cpus: {text!r} names no CPU")
    return sorted(cpus)


def runtime_choices(node: str, names: list[str], cpus: list[list[int]]) -> list[RuntimeChoice]:
    specs = [runtimes.get(n) for n in names]  # UnknownRuntime lists the known names
    if cpus and len(cpus) not in (1, len(specs)):
        raise UsageError(f"-g/--cpus: give one CPU set per runtime ({len(specs)}) or one for all, got {len(cpus)}")
    out: list[RuntimeChoice] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if len(specs) == 1:
            full = node
        else:
            short = spec.short_name
            seen[short] = seen.get(short, 0) + 1
            full = f"{node}.{short}" if seen[short] == 1 else f"{node}.{short}{seen[short]}"
        c = (cpus[0] if len(cpus) == 1 else cpus[i]) if cpus else None
        out.append(RuntimeChoice(spec.name, full, c))
    return out


def _as_list(v: Any) -> list[Any]:
    return [] if v is None else [x for x in v.split(":") if x] if isinstance(v, str) else list(v) if isinstance(v, list) else []


def build_settings(argv: list[str]) -> Settings | None:
    """Parse the command line; None for `--list-runtimes` (already printed). UsageError, ConfigError,
    runtimes.UnknownRuntime / RuntimeUnavailable on bad input."""
    args = parse(__doc__ or "", "start.py", argv, multi=MULTI)
    if args["--list-runtimes"]:
        for name in sorted(runtimes.REGISTRY):
            spec = runtimes.REGISTRY[name]
            try:
                cls = spec.load()
                why = cls.unavailable({})
                state = f"unavailable: {why}" if why else "available"
            except runtimes.RuntimeUnavailable as e:
                state = f"unavailable ({e.__cause__ or e})"
            print(f"{name:<28} {spec.summary}  [{state}]")
        for a, target in sorted(runtimes.ALIASES.items()):
            print(f"{a:<28} alias of {target}")
        return None
    name = args["--name"]
    if not name or "/" in name or "+" in name or "#" in name:
        raise UsageError(f"-n/--name: {name!r} is not a usable node name (no '/', '+', '#')")
    try:
        level = parse_level(args["--verbose"])
    except ValueError as e:
        raise UsageError(f"-v/--verbose: {e}") from None
    cfg = load_config(args["--config"])  # every key typed, each runtime's settings too (common/schema.py)
    if args["--mqtt"]:
        mqtt_spec = str(args["--mqtt"])
        try:  # HOST:PORT, or a list of them to fail over between (common/broker.py)
            brokers = broker_list(mqtt_spec, 0)
        except ValueError as e:
            raise UsageError(f"--mqtt: expected HOST:PORT[,HOST:PORT...], got {mqtt_spec!r} ({e})") from None
        if any(p == 0 for _, p in brokers):
            raise UsageError(f"--mqtt: expected HOST:PORT[,HOST:PORT...] (every broker with its port), got {mqtt_spec!r}")
        cfg.mqtt, cfg.mqtt_port = (brokers[0][0] if len(brokers) == 1 and "://" not in mqtt_spec else mqtt_spec), brokers[0][1]
    if args["--realm"]:
        cfg.realm = args["--realm"]
    cpus = [parse_cpus(c) for c in args["--cpus"]]
    rt_names = args["--runtime"] or ["linux"]
    if isinstance(rt_names, str):
        rt_names = [rt_names]
    choices = runtime_choices(name, list(rt_names), cpus)
    rs: dict[str, dict[str, Any]] = {k: dict(v) for k, v in cfg.runtimes.items()}
    if args["--module-root"]:
        roots = [os.path.abspath(os.path.expanduser(r)) for r in str(args["--module-root"]).split(":") if r]
        for d in roots:
            if not os.path.isdir(d):
                raise UsageError(f"--module-root: {d!r} is not a directory")
        for ch in choices:
            rs.setdefault(ch.registry_name, {})["module_root"] = roots
    base = rs.get("benchmarking")
    for ch in choices:  # the `benchmarking` section is the default of every benchmarking/* runtime
        if isinstance(base, dict) and ch.registry_name.startswith("benchmarking/"):
            own = rs.get(ch.registry_name)
            rs[ch.registry_name] = {**base, **(own if isinstance(own, dict) else {})}
    why_not = availability.unavailable([(ch.registry_name, rs.get(ch.registry_name, {})) for ch in choices])
    for ch in choices:  # (in a forked child: a runtime's check may need its engines, the supervisor loads none)
        if ch.registry_name in why_not:
            raise runtimes.RuntimeUnavailable(why_not[ch.registry_name])
    if args["--uuid"]:
        import uuid as _uuid

        try:
            _uuid.UUID(args["--uuid"])
        except ValueError:
            raise UsageError(f"--uuid: {args['--uuid']!r} is not a UUID") from None
    retries = number(args, "--start-retries", int, 1)
    if args["--backend"] not in ("posix", "sysv"):
        raise UsageError(f"--backend: expected posix or sysv, got {args['--backend']!r}")
    s = Settings(
        name=name, runtimes=choices, config=cfg, log_level=level,
        state_dir=None if args["--no-state"] else os.path.expanduser(args["--state-dir"]),
        manager_uuid=args["--uuid"], reg_timeout=number(args, "--reg-timeout", float, 0), start_retries=retries,
        backoff=number(args, "--backoff", float, 0), stop_timeout=number(args, "--stop-timeout", float, 0),
        worker_timeout=number(args, "--worker-timeout", float, 0),
        ka_interval=number(args, "--ka-interval", float, 0), spin=number(args, "--spin", float, 0), backend=args["--backend"],
        access_control=not args["--no-access-control"], runtime_settings=rs,
        spool_max=int(number(args, "--spool-max", float, 0) * (1 << 20)),
    )
    s.logdir = args["--logdir"]
    if args["--metrics-port"] is not None:
        s.metrics_port = int(number(args, "--metrics-port", int, 0, 65535))
    warn_unauthenticated(cfg, f"node {name}")  # a broker beyond loopback without credentials (issue #25)
    roots = [str(r) for v in rs.values() if isinstance(v, dict) for r in _as_list(v.get("module_root"))]
    warn_secrets_in_roots(roots or default_roots(), [cfg.path or "", cfg.pwd or "", s.state_dir or ""], f"node {name}")
    return s


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    held = EarlyRecords.hold()  # config warnings come before the logging set-up: keep them for it
    try:
        settings = build_settings(argv)
    except (UsageError, ConfigError, runtimes.UnknownRuntime, runtimes.RuntimeUnavailable) as e:
        setup_logging(logging.WARNING)
        held.replay()
        print(f"start.py: error: {e}", file=sys.stderr)
        return 2
    if settings is None:
        held.replay()
        return 0
    setup_logging(settings.log_level, settings.logdir, logfile_name=f"{settings.name}.log")
    held.replay()
    from supervisor.identity import StateError, check_state_dir
    from supervisor.node import Supervisor

    try:
        if settings.state_dir:
            check_state_dir(settings.state_dir)
        sup = Supervisor(settings)
    except (runtimes.UnknownRuntime, runtimes.RuntimeUnavailable, StateError) as e:
        log.critical("%s", e)  # one line; exit 2: final (the systemd unit does not restart it)
        return 2
    try:
        return sup.run()
    except StateError as e:  # the lock or the result spool in the state directory
        log.critical("%s", e)
        return 2
