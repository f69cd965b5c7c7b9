"""Power off cluster devices (usually needs --sudo).

The command is detached and delayed by 1 s so each SSH session ends cleanly first;
try it with --dry_run.

Usage:
    manage.py shutdown [options]

Options:
%s
"""
from __future__ import annotations

from cluster.options import COMMON_OPTIONS, guard
from cluster.remote import power_script
from cluster.scripts import run_shell_script, same_script

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "Shut down nodes."


@guard
def main(argv: list[str]) -> int:
    return run_shell_script(__doc__, "shutdown", argv, same_script(power_script("shutdown")))
