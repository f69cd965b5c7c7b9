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

from cluster.options import COMMON_OPTIONS, command_action, execute, guard, load_context, parse

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "Execute command on cluster using SSH."


@guard
def main(argv: list[str]) -> int:
    args = parse(__doc__, "cmd", argv, options_first=True)
    ctx = load_context(args)
    template = " ".join(args["<command>"])
    ctx.check(template)
    return execute(ctx, "cmd", command_action(ctx, template), lambda d: ctx.render(template, d))
