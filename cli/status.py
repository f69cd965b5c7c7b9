"""List the devices of the cluster manifest and their status: reachable or not, whether a
runtime of that node is registered with the orchestrator (up/down), its uuid, and the
manifest's model, CPU, target and arch.

A device is reachable when `ping` answers (TCP to its SSH port when there is no ping).
A runtime belongs to a device when its node (manager) is named like the device, or the
runtime's name is the device name or starts with `DEVICE.`.

Usage:
    manage.py status [options]
    manage.py status -h | --help

Options:
    -w, --watch SECONDS     Redraw every SECONDS until ^C (0: print once) [default: 0].
    -m, --manifest PATH     Manifest TSV (default: config key `manifest`).
    --port PORT             TCP port probed when ping is missing [default: 22].
    -c, --cfg PATH          Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL               Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL     Log level [default: WRN].
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cli._api import Api, CliError, config, guard, parse, setup
from common.manifest import Device, ManifestError, load_manifest

SUMMARY = "List nodes and node status."

_UP = {True: Text("up", style="bold bright_green"), False: Text("down", style="bold bright_red"),
       None: Text("n/a", style="bold bright_blue")}


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """ping once; without a ping binary, a TCP connect to `port`."""
    ping = shutil.which("ping")
    if ping:
        r = subprocess.run([ping, "-c", "1", "-W", str(max(1, int(timeout))), host],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def match_runtimes(devices: list[Device], runtimes: list[dict[str, Any]] | None) -> list[tuple[bool | None, str]]:
    """(runtime up?, uuid) per device; (None, '-') when the orchestrator could not be asked."""
    if runtimes is None:
        return [(None, "-") for _ in devices]
    out: list[tuple[bool | None, str]] = []
    for d in devices:
        hit = next((rt for rt in runtimes if rt.get("manager") == d.name or rt["name"] == d.name
                    or rt["name"].startswith(d.name + ".")), None)
        out.append((hit is not None, hit["uuid"] if hit else "-"))
    return out


def table(devices: list[Device], reach: list[bool], rts: list[tuple[bool | None, str]], error: str | None) -> Table:
    tab = Table(title=error, title_style="bold red")
    for col in ("Device", "Node", "Runtime", "UUID", "Model", "CPU", "Target", "Arch"):
        tab.add_column(Text(col, style="bold"))
    for d, ok, (up, uuid) in zip(devices, reach, rts):
        tab.add_row(d.name, _UP[ok], _UP[up], uuid, d.model, d.cpu, d.target, d.arch)
    return tab


def snapshot(api: Api, devices: list[Device], domain: str, port: int) -> Table:
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(devices)))) as pool:
        reach = list(pool.map(lambda d: reachable(d.fullname(domain), port), devices))
    error = None
    try:
        runtimes: list[dict[str, Any]] | None = api.runtimes(queued=0)
    except CliError as e:
        runtimes, error = None, str(e)
    return table(devices, reach, match_runtimes(devices, runtimes), error)


@guard("status")
def main(argv: list[str]) -> int:
    opts = parse(__doc__, "status", argv)
    setup(opts)
    cfg = config(opts)
    api = Api.from_opts(opts, cfg)
    path = opts["--manifest"] or cfg.manifest
    if not path:
        raise CliError(f"no manifest: pass --manifest PATH or set key `manifest` in {cfg.path or 'config.json'}")
    try:
        devices = load_manifest(path)
        watch = float(opts["--watch"])
        port = int(opts["--port"])
    except ManifestError as e:
        raise CliError(str(e)) from None
    except ValueError:
        raise CliError(f"--watch must be seconds and --port a number, got {opts['--watch']!r} / {opts['--port']!r}") from None
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if watch <= 0:
        console.print(snapshot(api, devices, cfg.domain, port))
        return 0
    with Live(snapshot(api, devices, cfg.domain, port), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(watch)
            live.update(snapshot(api, devices, cfg.domain, port), refresh=True)
