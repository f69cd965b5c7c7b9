"""Reboot cluster devices (usually needs --sudo).

The command is detached and delayed by 1 s so each SSH session ends cleanly first;
try it with --dry_run."""
from __future__ import annotations

from cluster.remote import power_script
from cluster.scripts import same_script, shell_command

__doc__, SUMMARY, main = shell_command(__doc__ or "", "reboot", "Reboot nodes.", same_script(power_script("reboot")))
