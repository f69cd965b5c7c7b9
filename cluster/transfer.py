"""File copies over SFTP: `put` (local -> every device) and `get` (every device -> local).

Remote paths are relative to the remote home (`~/` is accepted). Directories are copied
recursively. `get` keeps devices apart: a local target without a `{field}` becomes
`<target>/<device>/<basename>`.
"""
from __future__ import annotations

import os
import posixpath
from typing import Any

from cluster.fanout import Action, Result
from cluster.options import ClusterContext
from cluster.ssh import load_asyncssh
from common.manifest import Device


def remote_path(path: str) -> str:
    """SFTP has no `~`: `~/x` -> `x` (relative to the login directory)."""
    if path == "~":
        return "."
    if path.startswith("~/"):
        return path[2:] or "."
    return path


def _size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


def put_action(ctx: ClusterContext, sources: list[str], dst_template: str) -> Action:
    async def action(device: Device, conn: Any) -> Result:
        dst = remote_path(ctx.render(dst_template, device))
        try:
            async with conn.start_sftp_client() as sftp:
                await sftp.put(sources, dst, recurse=True, preserve=True)
        except (load_asyncssh().SFTPError, OSError) as e:
            return Result(device.name, error=f"put to {dst!r} failed: {getattr(e, 'reason', None) or e}")
        n = sum(_size(s) for s in sources)
        return Result(device.name, status=0, stdout=f"{', '.join(sources)} -> {dst} ({n} bytes)")

    return action


def local_target(ctx: ClusterContext, dst_template: str, src: str, device: Device) -> str:
    """Where `get` stores the file of `device`."""
    if "{" in dst_template:
        return os.path.expanduser(ctx.render(dst_template, device))
    return os.path.join(os.path.expanduser(dst_template), device.name, posixpath.basename(src.rstrip("/")) or "home")


def get_action(ctx: ClusterContext, src_template: str, dst_template: str) -> Action:
    async def action(device: Device, conn: Any) -> Result:
        src = remote_path(ctx.render(src_template, device))
        dst = local_target(ctx, dst_template, src, device)
        parent = os.path.dirname(dst)
        try:
            if parent:
                os.makedirs(parent, exist_ok=True)
            async with conn.start_sftp_client() as sftp:
                await sftp.get(src, dst, recurse=True, preserve=True)
        except (load_asyncssh().SFTPError, OSError) as e:
            return Result(device.name, error=f"get {src!r} failed: {getattr(e, 'reason', None) or e}")
        return Result(device.name, status=0, stdout=f"{src} -> {dst} ({_size(dst)} bytes)")

    return action
