"""Update the SilverLine checkout on cluster devices: `git pull --ff-only`, then reinstall.

Where the node's systemd unit `silverline-node@DEVICE` is installed, the checkout is the unit's
WorkingDirectory; elsewhere --path. Reinstalls with <path>/.venv/bin/pip when the venv exists,
else `make env`. Restart the nodes afterwards with `manage.py kill` and `manage.py start`.

Usage:
    manage.py update [options] [--path=DIR]

Options:
    --path=DIR                  The SilverLine checkout on the devices (a template) [default: silverline-node].
%s
"""
from __future__ import annotations

from cluster.options import COMMON_OPTIONS, execute, guard, load_context, parse, shell_action
from cluster.remote import update_script
from common.manifest import Device

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "Update runtimes."


@guard
def main(argv: list[str]) -> int:
    args = parse(__doc__, "update", argv)
    ctx = load_context(args)
    ctx.check(args["--path"])

    def script(d: Device) -> str:
        return update_script(ctx.render(args["--path"], d), d.name)

    return execute(ctx, "update", shell_action(ctx, script), script)
