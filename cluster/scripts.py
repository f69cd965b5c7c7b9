"""The body every per-device cluster script shares: parse, load the context, plan, run.

A script (cli/reboot.py, cli/start.py, ...) keeps its usage text, its own option checks and what it
runs on a device; `run_script` does the rest, in the order each script had it: parse `argv` (`-h`
prints the usage), load config + manifest + devices (bad input: exit 2 before any connection), let
the script's `plan` check its own options and say what to run, then run that on the devices.
"""
from __future__ import annotations

from typing import Any, Callable

from cluster.fanout import Action
from cluster.options import COMMON_OPTIONS, ClusterContext, execute, load_context, parse, shell_action
from cluster.templates import TemplateError
from common import usage
from common.manifest import Device

Describe = Callable[[Device], str]  # what --dry_run prints for a device
Plan = tuple[Action, Describe]  # what runs on a device, and how --dry_run shows it
Run = Callable[[ClusterContext, str, Action, Describe], int]  # `execute` or a script's own reporting
ScriptBuilder = Callable[[dict[str, Any], ClusterContext], Describe]  # options -> the shell script of a device


def run_script(doc: str, name: str, argv: list[str], plan: Callable[[dict[str, Any], ClusterContext], Plan], *,
               options_first: bool = False, run: Run = execute) -> int:
    """parse -> load_context -> `plan(args, ctx)` (the script's checks; its action) -> `run` on the devices."""
    args = parse(doc, name, argv, options_first=options_first)
    ctx = load_context(args)
    return run(ctx, name, *plan(args, ctx))


def run_shell_script(doc: str, name: str, argv: list[str], build: ScriptBuilder, *, run: Run = execute) -> int:
    """`run_script` for a script that runs a shell script per device: `build(args, ctx)` checks the
    options and returns the per-device script, run under `sh -c` (shell_action); --dry_run prints it."""

    def plan(args: dict[str, Any], ctx: ClusterContext) -> Plan:
        script = build(args, ctx)
        return shell_action(ctx, script), script

    return run_script(doc, name, argv, plan, run=run)


def checkout_script(script: Callable[[str, str], str]) -> ScriptBuilder:
    """The builder of a script over the node's checkout: `script(path, node)` with --path rendered per
    device (checked for every device first) and the device's name (whose systemd unit's checkout wins)."""

    def build(args: dict[str, Any], ctx: ClusterContext) -> Describe:
        ctx.check(args["--path"])
        return lambda d: script(ctx.render(args["--path"], d), d.name)

    return build


def same_script(script: str) -> ScriptBuilder:
    """The builder of a script that takes no options of its own and is the same on every device."""
    return lambda args, ctx: lambda d: script


PATH_OPTION = "    --path=DIR                  The SilverLine checkout on the devices (a template) [default: silverline-node]."


def shell_command(intro: str, name: str, summary: str, build: ScriptBuilder, *, path: bool = False,
                  run: Run = execute) -> tuple[str, str, Callable[[list[str]], int]]:
    """A whole `manage.py NAME` script that runs a shell script per device (cli/reboot.py,
    cli/update.py, ...): its usage text (the script's `intro`, then the usage and options every such
    script has, `--path` for the scripts over the node's checkout), its SUMMARY and its main."""
    options = (PATH_OPTION + "\n" if path else "") + COMMON_OPTIONS
    doc = f"{intro.rstrip()}\n\nUsage:\n    manage.py {name} [options]{' [--path=DIR]' if path else ''}\n\nOptions:\n{options}\n"

    @usage.guard(f"manage.py {name}", (TemplateError,), 2)
    def main(argv: list[str]) -> int:
        return run_shell_script(doc, name, argv, build, run=run)

    return doc, summary, main
