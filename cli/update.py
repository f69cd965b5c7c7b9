"""Update the SilverLine checkout on cluster devices: `git pull --ff-only`, then reinstall.

Where the node's systemd unit `silverline-node@DEVICE` is installed, the checkout is the unit's
WorkingDirectory; elsewhere --path. Reinstalls with <path>/.venv/bin/pip when the venv exists,
else `make env`. Restart the nodes afterwards with `manage.py kill` and `manage.py start`."""
from __future__ import annotations

from cluster.remote import update_script
from cluster.scripts import checkout_script, shell_command

__doc__, SUMMARY, main = shell_command(__doc__ or "", "update", "Update runtimes.", checkout_script(update_script), path=True)
