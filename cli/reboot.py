"""Reboot cluster devices (usually needs --sudo).

The command is detached and delayed by 1 s so each SSH session ends cleanly first;
try it with --dry_run.

Usage:
    manage.py reboot [options]

Options:
%s
"""
from __future__ import annotations

from cluster.options import COMMON_OPTIONS, execute, guard, load_context, parse, shell_action
from cluster.remote import power_script
from common.manifest import Device

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "Reboot nodes."


@guard
def main(argv: list[str]) -> int:
    args = parse(__doc__, "reboot", argv)
    ctx = load_context(args)

    def script(d: Device) -> str:
        return power_script("reboot")

    return execute(ctx, "reboot", shell_action(ctx, script), script)
