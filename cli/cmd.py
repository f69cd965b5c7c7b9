"""Execute a command on cluster devices over SSH.

The command is a template: {name}, {fullname}, {arch}, {cgroup}, {triple}, {target}, ...
(one field per manifest column, lowercase) are filled per device. Options go before the command.

Usage:
    manage.py cmd [options] <command>...

Options:
%s

Examples:
    manage.py cmd -d pi4,nuc 'uname -m; echo "I am {name} ({arch})"'
    manage.py cmd --sudo 'id -un'
"""
from __future__ import annotations

from typing import Any

from cluster.options import COMMON_OPTIONS, ClusterContext, command_action, guard
from cluster.scripts import Plan, run_script

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "Execute command on cluster using SSH."


def plan(args: dict[str, Any], ctx: ClusterContext) -> Plan:
    template = " ".join(args["<command>"])
    ctx.check(template)
    return command_action(ctx, template), lambda d: ctx.render(template, d)


@guard
def main(argv: list[str]) -> int:
    return run_script(__doc__, "cmd", argv, plan, options_first=True)
