"""List the devices of the cluster manifest and their status: reachable or not, whether a
runtime of that node is registered with the orchestrator (up/down), its uuid, and the
manifest's type, model, CPU, target and arch.

A device is reachable when an SSH server answers at the address the cluster scripts connect to:
HostName, Port and User from the SSH config (-F, else ~/.ssh/config) and the config's `domain` /
`username`, as `manage.py cmd/start/kill/...` resolve them.
As in the original, only devices whose manifest `Type` is `linux` or `orchestrator` (or that
have no `Type`) are probed; the others show `n/a`.
A runtime belongs to a device when its node (manager) is named like the device, or the
runtime's name is the device name or starts with `DEVICE.`.

Usage:
    manage.py status [options]
    manage.py status -h | --help

Options:
    -w, --watch SECONDS     Redraw every SECONDS until ^C (0: print once) [default: 0].
    -m, --manifest PATH     Manifest TSV (default: config key `manifest`).
    -F, --ssh_config FILE   SSH client config instead of ~/.ssh/config (like `ssh -F`).
    --timeout SEC           Seconds to wait for each device's SSH server [default: 2].
    -c, --cfg PATH          Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL               Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL     Log level [default: WRN].
"""
from __future__ import annotations

import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cli._api import Api, CliError, begin, guard, number
from cluster.ssh import Endpoint, SshOptions, resolve
from common.manifest import Device, ManifestError, load_manifest

SUMMARY = "List nodes and node status."

_UP = {True: Text("up", style="bold bright_green"), False: Text("down", style="bold bright_red"),
       None: Text("n/a", style="bold bright_blue")}


def reachable(end: Endpoint, timeout: float = 2.0) -> bool:
    """An SSH server answers at `end` (its version banner, RFC 4253 4.2, arrives within `timeout`)."""
    try:
        with socket.create_connection((end.host, end.port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(4).startswith(b"SSH-")
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


PROBED_TYPES = ("", "linux", "orchestrator")  # manifest `Type`s that are probed (the original pings only these)


def table(devices: list[Device], reach: list[bool | None], rts: list[tuple[bool | None, str]], error: str | None) -> Table:
    tab = Table(title=error, title_style="bold red")
    for col in ("Device", "Type", "Node", "Runtime", "UUID", "Model", "CPU", "Target", "Arch"):
        tab.add_column(Text(col, style="bold"))
    for d, ok, (up, uuid) in zip(devices, reach, rts):
        tab.add_row(d.name, d.type or "-", _UP[ok], _UP[up], uuid, d.model, d.cpu, d.target, d.arch)
    return tab


def snapshot(api: Api, devices: list[Device], ssh: SshOptions, timeout: float) -> Table:
    """The table for --watch: an unreachable orchestrator is its caption (the watch goes on)."""
    tab, error = _snapshot(api, devices, ssh, timeout)
    tab.title = error
    return tab


def _snapshot(api: Api, devices: list[Device], ssh: SshOptions, timeout: float) -> tuple[Table, str | None]:
    def probe(d: Device) -> bool | None:
        return reachable(resolve(d, ssh), timeout) if d.type.lower() in PROBED_TYPES else None

    with ThreadPoolExecutor(max_workers=min(32, max(1, len(devices)))) as pool:
        reach = list(pool.map(probe, devices))
    error = None
    try:
        runtimes: list[dict[str, Any]] | None = api.runtimes(queued=0)
    except CliError as e:
        runtimes, error = None, str(e)
    return table(devices, reach, match_runtimes(devices, runtimes), None), error


@guard("status")
def main(argv: list[str]) -> int:
    opts, cfg, api = begin(__doc__, "status", argv)
    path = opts["--manifest"] or cfg.manifest
    if not path:
        raise CliError(f"no manifest: pass --manifest PATH or set key `manifest` in {cfg.path or 'config.json'}")
    try:
        devices = load_manifest(path)
    except ManifestError as e:
        raise CliError(str(e)) from None
    watch = number(opts, "--watch", float, lo=0)
    timeout = number(opts, "--timeout", float, lo=0.1)
    if opts["--ssh_config"] and not os.path.exists(os.path.expanduser(opts["--ssh_config"])):
        raise CliError(f"SSH config {opts['--ssh_config']!r} does not exist")
    # the same SSH options as the cluster scripts (cluster/options.py load_context)
    ssh = SshOptions(ssh_config=opts["--ssh_config"], username=cfg.username, domain=cfg.domain, connect_timeout=timeout)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if watch <= 0:  # the devices' reachability still prints; an unreachable orchestrator is then one line, exit 1
        tab, error = _snapshot(api, devices, ssh, timeout)
        console.print(tab)
        if error:
            raise CliError(error)
        return 0
    with Live(snapshot(api, devices, ssh, timeout), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(watch)
            live.update(snapshot(api, devices, ssh, timeout), refresh=True)
