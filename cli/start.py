"""Start the SilverLine node on cluster devices.

Uses the node's systemd unit `silverline-node@NAME` (NAME: the node name, by default the device's;
see `manage.py install`) where it is enabled or active; elsewhere runs `start.py -n {name} <args>` detached (nohup, setsid) in the checkout at --path,
logging to silverline.log and recording its pid in .silverline.pid (for `manage.py kill`).
<args> are templates too (see the examples).

Usage:
    manage.py start [options] [--path=DIR] [--] [<args>...]

Options:
    --path=DIR                  The SilverLine checkout on the devices (a template) [default: silverline-node].
%s

Examples:
    manage.py start -- -r linux benchmarking
    manage.py start -d pi4 -- -n {name}-bench -r benchmarking -l logs
"""
from __future__ import annotations

from typing import Any

from cluster.options import COMMON_OPTIONS, ClusterContext, guard
from cluster.remote import start_script
from cluster.scripts import Describe, run_shell_script
from common.manifest import Device

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "Start runtimes on cluster."


def build(args: dict[str, Any], ctx: ClusterContext) -> Describe:
    ctx.check(args["--path"])
    templates = list(args["<args>"])
    if "-n" not in templates and "--name" not in templates:
        templates = ["-n", "{name}", *templates]
    for t in templates:
        ctx.check(t)

    def script(d: Device) -> str:
        rendered = [ctx.render(t, d) for t in templates]
        node = next((rendered[i + 1] for i, t in enumerate(rendered[:-1]) if t in ("-n", "--name")), d.name)
        return start_script(ctx.render(args["--path"], d), rendered, node)

    return script


@guard
def main(argv: list[str]) -> int:
    return run_shell_script(__doc__, "start", argv, build)
