"""Copy a file or directory from cluster devices (SFTP).

<src> is a remote path template (relative to the remote home). The copy of each device goes
to <dst>/<device>/<basename of src>, or, when <dst> has a field like {name}, to <dst> itself.

Usage:
    manage.py get [options] <src> [<dst>]

Options:
%s
"""
from __future__ import annotations

from typing import Any

from cluster.options import COMMON_OPTIONS, ClusterContext, guard
from cluster.scripts import Plan, run_script
from cluster.transfer import get_action, local_target, remote_path
from common.manifest import Device

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "Copy file from cluster."


def plan(args: dict[str, Any], ctx: ClusterContext) -> Plan:
    src, dst = args["<src>"], args["<dst>"] or "."
    ctx.check(src)
    ctx.check(dst)

    def describe(d: Device) -> str:
        s = remote_path(ctx.render(src, d))
        return f"get {s} -> {local_target(ctx, dst, s, d)}"

    return get_action(ctx, src, dst), describe


@guard
def main(argv: list[str]) -> int:
    return run_script(__doc__, "get", argv, plan)
