"""What every cluster script shares: common options, loading config + manifest, running an action.

A script composes its docopt text with `COMMON_OPTIONS`, calls `load_context(args)` and then
`execute(ctx, title, action, describe)` (cluster/scripts.py: those steps in one call); bad input (config,
manifest, template, device name) is one line on stderr and exit status 2 before any connection is made.
"""
from __future__ import annotations

import asyncio
import getpass
import os
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from cluster.fanout import Action, Result, fan_out
from cluster.report import Reporter
from cluster.ssh import SshOptions, run_command
from cluster.templates import TemplateError, render
from common import usage
from common.config import Config, ConfigError, load_config
from common.manifest import Device, ManifestError, load_manifest, select_devices
from common.usage import UsageError as UsageError  # bad input found before connecting (re-exported: cli/ imports it from here)

SUDO_ENV = "SL_SUDO_PASSWORD"

COMMON_OPTIONS = """\
    -d NAMES, --devices=NAMES   Devices to act on, comma-separated (default: all devices of the manifest).
    -m PATH, --manifest=PATH    Manifest TSV of the cluster (default: `manifest` of the config file).
    -c PATH, --cfg=PATH         Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    -F FILE, --ssh_config=FILE  SSH client config to use instead of ~/.ssh/config (like `ssh -F`).
    --sync                      Act on one device after the other (default: all in parallel).
    --ignore_err                With --sync, go on after a failed device; exit 0 even if devices failed.
    --sudo                      Run as root via sudo; the password is read from $SL_SUDO_PASSWORD or prompted.
    --timeout=SEC               SSH connect timeout in seconds [default: 10].
    -j N, --jobs=N              Connections at most at once [default: 32].
    --dry_run                   Print what would run on each device; connect to none.
    -q, --quiet                 Result lines only, without the devices' output.
    -h, --help                  Show this help."""


@dataclass
class ClusterContext:
    config: Config
    devices: list[Device]
    ssh: SshOptions
    sync: bool = False
    ignore_err: bool = False
    jobs: int = 32
    dry_run: bool = False
    quiet: bool = False
    sudo_password: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # more template fields (e.g. {path})

    def render(self, template: str, device: Device) -> str:
        return render(template, device, domain=self.config.domain, username=self.config.username, extra=self.extra)

    def check(self, template: str) -> None:
        """Render `template` for every device so an error shows before any connection."""
        for d in self.devices:
            self.render(template, d)


def sudo_password(enabled: bool) -> str | None:
    """The sudo password: $SL_SUDO_PASSWORD (for scripts) or a getpass prompt."""
    if not enabled:
        return None
    pw = os.environ.get(SUDO_ENV)
    if pw is not None:
        return pw
    if not sys.stdin.isatty():
        raise UsageError(f"--sudo needs a password: set ${SUDO_ENV} or run from a terminal to be prompted")
    return getpass.getpass("sudo password on the devices: ")


def load_context(args: dict[str, Any], *, need_devices: bool = True) -> ClusterContext:
    """Config, manifest, selected devices and SSH options from the common options."""
    try:  # as the other scripts (cli/_api.py): --cfg, else $SL_CONFIG, else config.json if present
        cfg = load_config(args.get("--cfg") or os.environ.get("SL_CONFIG") or None)
    except ConfigError as e:
        raise UsageError(f"bad config: {e}") from e
    manifest = args.get("--manifest") or cfg.manifest
    if not manifest:
        raise UsageError(f"no manifest: pass -m MANIFEST.tsv or set `manifest` in {cfg.path or 'config.json'}")
    try:
        devices = select_devices(load_manifest(manifest), [args["--devices"]] if args.get("--devices") else None)
    except ManifestError as e:
        raise UsageError(str(e)) from e
    if need_devices and not devices:
        raise UsageError(f"{manifest}: no devices")
    ssh = SshOptions(ssh_config=args.get("--ssh_config"), username=cfg.username, domain=cfg.domain,
                     connect_timeout=usage.number(args, "--timeout", float, above=0))
    if ssh.ssh_config and not os.path.exists(os.path.expanduser(ssh.ssh_config)):
        raise UsageError(f"SSH config {ssh.ssh_config!r} does not exist")
    return ClusterContext(
        config=cfg, devices=devices, ssh=ssh, sync=bool(args.get("--sync")), ignore_err=bool(args.get("--ignore_err")),
        jobs=usage.number(args, "--jobs", int, 1), dry_run=bool(args.get("--dry_run")), quiet=bool(args.get("--quiet")),
        sudo_password=None if args.get("--dry_run") else sudo_password(bool(args.get("--sudo"))),
    )


def command_action(ctx: ClusterContext, template: str) -> Action:
    """An action that runs the rendered `template` (under sudo with --sudo)."""
    return shell_action(ctx, lambda d: ctx.render(template, d), wrap=False)


def shell_action(ctx: ClusterContext, script: Callable[[Device], str], *, wrap: bool = True) -> Action:
    """An action that runs `script(device)`; with `wrap`, under `sh -c` so it is POSIX sh whatever the login shell."""

    async def action(device: Device, conn: Any) -> Result:
        text = script(device)
        if wrap and ctx.sudo_password is None:
            text = f"sh -c {shlex.quote(text)}"  # (sudo_wrap already runs `sh -c`)
        status, out, err = await run_command(conn, text, sudo_password=ctx.sudo_password, timeout=ctx.ssh.command_timeout)
        return Result(device.name, status=status, stdout=out, stderr=err)

    return action


def execute(ctx: ClusterContext, title: str, action: Action, describe: Callable[[Device], str]) -> int:
    """Run `action` on the selected devices with a progress bar; exit status for the script."""
    if ctx.dry_run:
        for d in ctx.devices:
            print(f"{d.name}: {describe(d)}")
        return 0
    with Reporter(title, len(ctx.devices), show_output=not ctx.quiet) as rep:
        results = asyncio.run(fan_out(ctx.devices, action, ctx.ssh, sync=ctx.sync, ignore_err=ctx.ignore_err,
                                      jobs=ctx.jobs, on_done=rep.done))
        rep.console.print(rep.summary())
    return 0 if ctx.ignore_err or all(r.ok for r in results) else 1


def parse(doc: str, name: str, argv: list[str], *, options_first: bool = False) -> dict[str, Any]:
    """docopt over a usage text written as `manage.py NAME ...` (common/usage.py); `-h` prints it and exits."""
    return usage.parse(doc, f"manage.py {name}", argv, options_first=options_first)


def guard(main: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """Decorator for script mains: a usage mistake or TemplateError -> one line on stderr, exit 2."""
    return usage.guard(usage.script_name(main.__module__), (TemplateError,), 2)(main)
