"""Copy a file or directory to cluster devices (SFTP).

<dst> is a remote path template, relative to the remote home (`~/` is accepted), e.g.
`bench/{name}.json`; a directory <src> is copied recursively.

Usage:
    manage.py put [options] <src> <dst>

Options:
%s
"""
from __future__ import annotations

import os

from cluster.options import COMMON_OPTIONS, UsageError, execute, guard, load_context, parse
from cluster.transfer import put_action, remote_path
from common.manifest import Device

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "Copy file to cluster."


@guard
def main(argv: list[str]) -> int:
    args = parse(__doc__, "put", argv)
    src = os.path.expanduser(args["<src>"])
    if not os.path.exists(src):
        raise UsageError(f"put: local {src!r} does not exist")
    ctx = load_context(args)
    dst = args["<dst>"]
    ctx.check(dst)

    def describe(d: Device) -> str:
        return f"put {src} -> {remote_path(ctx.render(dst, d))}"

    return execute(ctx, "put", put_action(ctx, [src], dst), describe)
