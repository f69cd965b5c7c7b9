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

from cluster.options import COMMON_OPTIONS, guard
from cluster.remote import update_script
from cluster.scripts import checkout_script, run_shell_script

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "Update runtimes."


@guard
def main(argv: list[str]) -> int:
    return run_shell_script(__doc__, "update", argv, checkout_script(update_script))
