"""Stop the SilverLine node on cluster devices.

Stops the node's systemd unit `silverline-node@DEVICE` where it is active; elsewhere sends SIGTERM to the pid
that `manage.py start` recorded in <path>/.silverline.pid (the node stops gracefully), then
SIGKILL after --grace seconds.

Usage:
    manage.py kill [options] [--path=DIR] [--grace=SEC] [--end-modules]

Options:
    --path=DIR                  The SilverLine checkout on the devices (a template) [default: silverline-node].
    --grace=SEC                 Seconds to wait after SIGTERM before SIGKILL [default: 10].
    --end-modules               End the node's modules for good (SIGUSR1; they are not resurrected). Without
                                it the stop is one for a restart: the orchestrator re-creates the modules
                                when the node is back (docs/supervisor.md, "Stop").
%s
"""
from __future__ import annotations

from typing import Any

from cluster.options import COMMON_OPTIONS, ClusterContext, UsageError, guard
from cluster.remote import kill_script
from cluster.scripts import Describe, run_shell_script
from common.manifest import Device

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "Stop runtimes on cluster."


def build(args: dict[str, Any], ctx: ClusterContext) -> Describe:
    ctx.check(args["--path"])
    try:
        grace = int(args["--grace"])
    except ValueError:
        raise UsageError(f"--grace must be a whole number of seconds, got {args['--grace']!r}") from None

    def script(d: Device) -> str:
        return kill_script(ctx.render(args["--path"], d), grace, d.name, end_modules=bool(args["--end-modules"]))

    return script


@guard
def main(argv: list[str]) -> int:
    return run_shell_script(__doc__, "kill", argv, build)
