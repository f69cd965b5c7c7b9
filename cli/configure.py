"""Create the node/cluster configuration file (config.json, docs/protocol.md, "Configuration file"), with
the platform facts of this machine (CPU model, cores, caches, memory, arch).

The original's option spellings are accepted too: `--mqtt_pwd` (= --pwd), `--mqtt_user`
(= --mqtt_username), `-c` (= --cpu), `--http HOST:PORT`, and `--file_store HOST:PORT`, which is
written for the original's tools (this project does not use a file store).

Usage:
    manage.py configure [options]
    manage.py configure -h | --help

Options:
    -o, --out PATH          Where to write (overwritten if it exists) [default: config.json].
    --print                 Print the configuration instead of writing it.
    --mqtt HOST             MQTT broker host; `ssl:HOST` turns on TLS [default: localhost].
    --mqtt_port PORT        Broker port (default: 8883 with ssl:, else 1883).
    --mqtt_username USER    Broker user name; also `--mqtt_user`.
    --pwd PATH              File holding the broker password; also `--mqtt_pwd`.
    --realm REALM           Topic realm [default: realm].
    --http HOST             Orchestrator host (REST API), or HOST:PORT as the original [default: localhost].
    --http_port PORT        Orchestrator REST port (default: the PORT of --http, else 8000).
    --file_store HOST:PORT  The original's file store: written as `file_store`/`file_store_port` for its tools.
    --manifest PATH         Cluster manifest TSV.
    --domain DOMAIN         Domain appended to device names for SSH [default: ].
    --username USER         SSH user on the devices [default: ].
    -t, --target TARGET     LLVM compilation target of this machine (e.g. x86_64-unknown-linux-gnu).
    -c, --cpu CPU           LLVM CPU name of this machine (e.g. skylake).
    -v, --verbose LEVEL     Log level [default: WRN].
"""
from __future__ import annotations

import json
import os
import platform
from typing import Any

from cli._api import CliError, guard, parse, setup
from cli._compat import spellings
from common import usage
from common.config import Config, ConfigError, load_config

SUMMARY = "Create node/cluster configuration file."

ORIGINAL_SPELLINGS = {"--mqtt_pwd": "--pwd", "--mqtt_user": "--mqtt_username"}  # the original's configure.py


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def _size(text: str | None) -> int | None:
    """`32K` / `1024K` / `8M` (sysfs cache sizes) -> bytes."""
    if not text:
        return None
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1].upper(), 1)
    try:
        return int(text.rstrip("KMGkmg")) * mult
    except ValueError:
        return None


def platform_facts(target: str | None = None, cpu: str | None = None) -> dict[str, Any]:
    """What the orchestrator and benchmarks want to know about this machine (Linux sysfs/procfs)."""
    model = None
    mhz = None
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "cpu model") and model is None:
            model = val.strip()
        elif key == "cpu MHz" and mhz is None:
            try:
                mhz = float(val)
            except ValueError:
                pass
    caches: dict[str, int] = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    for idx in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        level = _read(f"{base}/{idx}/level")
        kind = (_read(f"{base}/{idx}/type") or "").lower()
        size = _size(_read(f"{base}/{idx}/size"))
        if level and size:
            name = f"l{level}" + ({"data": "d", "instruction": "i"}.get(kind, ""))
            caches[f"{name}_size"] = size
            linesize = _read(f"{base}/{idx}/coherency_line_size")
            if linesize and linesize.isdigit():
                caches[f"{name}_line"] = int(linesize)
            ways = _read(f"{base}/{idx}/ways_of_associativity")
            if ways and ways.isdigit():
                caches[f"{name}_assoc"] = int(ways)  # the original's (and Pitot's) `l2_assoc`
    khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    cpufreq = int(khz) * 1000 if khz and khz.isdigit() else int(mhz * 1e6) if mhz else None  # Hz, as the original
    try:
        mem_total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        mem_total = None
    return {
        "cpu": {"model": model, "cores": os.cpu_count(), "mhz": mhz, "cpufreq": cpufreq, "arch": platform.machine(),
                "target": target, "cpu": cpu},
        "mem": {"total": mem_total, **caches},
        "os": {"system": platform.system(), "release": platform.release()},
        "python": platform.python_version(),
    }


def _port(opts: dict[str, Any], key: str, default: int) -> int:
    v = usage.number(opts, key, int, 1, 65535)
    return default if v is None else int(v)


def _host_port(opts: dict[str, Any], key: str, default_port: int | None) -> tuple[str, int | None]:
    """`HOST` or `HOST:PORT` (the original's form of --http and --file_store)."""
    raw = str(opts[key])
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or ":" in host:  # no port (an IPv6 address is a host)
        return raw, default_port
    if not host:
        raise CliError(f"{key} must be HOST or HOST:PORT, got {raw!r}")
    return host, _port({key: port}, key, default_port or 0)


def build(opts: dict[str, Any]) -> dict[str, Any]:
    host = str(opts["--mqtt"])
    ssl = host.startswith("ssl:")
    http, http_port = _host_port(opts, "--http", None)
    if opts["--http_port"] is not None or http_port is None:
        http_port = _port(opts, "--http_port", 8000)
    cfg = Config(
        mqtt=host[4:] if ssl else host, mqtt_port=_port(opts, "--mqtt_port", 8883 if ssl else 1883), use_ssl=ssl,
        mqtt_username=opts["--mqtt_username"], pwd=os.path.abspath(os.path.expanduser(opts["--pwd"])) if opts["--pwd"] else None,
        realm=opts["--realm"], http=http, http_port=http_port,
        manifest=os.path.abspath(os.path.expanduser(opts["--manifest"])) if opts["--manifest"] else None,
        domain=opts["--domain"], username=opts["--username"], platform=platform_facts(opts["--target"], opts["--cpu"]),
    )
    out = cfg.to_json()
    if opts["--file_store"]:
        out["file_store"], out["file_store_port"] = _host_port(opts, "--file_store", 8001)
    return out


@guard("configure")
def main(argv: list[str]) -> int:
    opts = parse(__doc__, "configure", spellings(argv, ORIGINAL_SPELLINGS))
    setup(opts)
    data = build(opts)
    text = json.dumps(data, indent=4) + "\n"
    if opts["--print"]:
        print(text, end="")
        return 0
    out = str(opts["--out"])
    try:
        if os.path.dirname(out):
            os.makedirs(os.path.dirname(out), exist_ok=True)
        tmp = out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
    except OSError as e:
        raise CliError(f"cannot write {out}: {e.strerror}") from None
    try:
        load_config(out)  # what we wrote must load back
    except ConfigError as e:
        raise CliError(f"wrote {out} but it does not load: {e}") from None
    print(f"wrote {out}")
    return 0
