"""Get the SilverLine version on each cluster device: the commit hash of its checkout.

Prints `<hash> <commit date>` per device, `(modified)` when the checkout has local changes,
and which devices differ from the most common version. Where the node's systemd unit
`silverline-node@DEVICE` is installed, the checkout is the unit's WorkingDirectory; elsewhere --path."""
from __future__ import annotations

import asyncio
from collections import Counter

from cluster.fanout import Action, fan_out
from cluster.options import ClusterContext, execute
from cluster.remote import version_script
from cluster.report import Reporter
from cluster.scripts import Describe, checkout_script, shell_command


def report_versions(ctx: ClusterContext, title: str, action: Action, describe: Describe) -> int:
    """Each device's version line, then which devices differ from the most common one."""
    if ctx.dry_run:
        return execute(ctx, title, action, describe)
    with Reporter(title, len(ctx.devices), show_output=False) as rep:
        results = asyncio.run(fan_out(ctx.devices, action, ctx.ssh, sync=ctx.sync,
                                      ignore_err=ctx.ignore_err, jobs=ctx.jobs, on_done=rep.done))
        versions = {r.device: r.stdout.strip() for r in results if r.ok}
        for r in results:
            if r.ok:
                rep.console.print(f"{r.device:<12}  {versions[r.device]}")
            elif r.stderr.strip():
                rep.console.print(f"{r.device:<12}  {r.stderr.strip().splitlines()[-1]}")
        hashes = Counter(v.split()[0] for v in versions.values() if v)
        if len(hashes) > 1:
            common = hashes.most_common(1)[0][0]
            odd = [d for d, v in versions.items() if not v.startswith(common)]
            rep.console.print(f"{len(hashes)} different versions; most devices at {common[:12]}, other: {', '.join(odd)}")
        rep.console.print(rep.summary())
    return 0 if ctx.ignore_err or all(r.ok for r in results) else 1


__doc__, SUMMARY, main = shell_command(__doc__ or "", "version", "Get runtime version on each cluster node via commit hash.",
                                       checkout_script(version_script), path=True, run=report_versions)
