"""Write cluster management aliases to a shell file (source it from ~/.bashrc).

One alias per device that opens an SSH session on it (`pi4` -> `ssh pi4.<domain>`), and
`sl` plus `sl-<script>` for the cluster scripts with this manifest/config/SSH config filled in
(`sl-cmd 'uptime'`). The file is rewritten whole: it holds nothing else.

Usage:
    manage.py alias [options] [--output=FILE] [--prefix=P]

Options:
    -o FILE, --output=FILE      Where to write; `-` for stdout [default: ~/.silverline_aliases].
    --prefix=P                  Prefix of the device aliases (e.g. `sl-` gives `sl-pi4`) [default: ].
%s
"""
from __future__ import annotations

import os
import re
import shlex
import sys

from cluster.options import COMMON_OPTIONS, ClusterContext, UsageError, guard, load_context, parse

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "Write cluster management aliases."

CLUSTER_SCRIPTS = ("cmd", "put", "get", "start", "kill", "update", "reboot", "shutdown", "version", "runall", "aot")
_ALIAS_OK = re.compile(r"^[A-Za-z0-9_.\-]+$")


def alias_lines(ctx: ClusterContext, args: dict[str, object], prefix: str) -> list[str]:
    """The alias file's lines."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    manage = [sys.executable, os.path.join(here, "manage.py")]
    common: list[str] = []
    cfg = args.get("--cfg") or os.environ.get("SL_CONFIG")
    for opt, v in (("--cfg", cfg or ctx.config.path), ("--manifest", args.get("--manifest")), ("--ssh_config", args.get("--ssh_config"))):
        if v:
            common += [opt, os.path.abspath(os.path.expanduser(str(v)))]
    if not args.get("--manifest") and ctx.config.manifest:
        common += ["--manifest", os.path.abspath(os.path.expanduser(ctx.config.manifest))]
    ssh = ["ssh"]
    if args.get("--ssh_config"):
        ssh += ["-F", os.path.abspath(os.path.expanduser(str(args["--ssh_config"])))]
    if ctx.config.username:
        ssh += ["-l", ctx.config.username]
    lines = [f"# SilverLine cluster aliases, written by `manage.py alias` ({len(ctx.devices)} devices)."]
    for d in ctx.devices:
        name = prefix + d.name
        if not _ALIAS_OK.match(name):
            raise UsageError(f"cannot make an alias named {name!r}")
        cmd = " ".join(shlex.quote(w) for w in [*ssh, d.fullname(ctx.config.domain)])
        lines.append(f"alias {name}={shlex.quote(cmd)}")
    lines.append(f"alias sl={shlex.quote(' '.join(shlex.quote(w) for w in manage))}")
    for s in CLUSTER_SCRIPTS:
        cmd = " ".join(shlex.quote(w) for w in [*manage, s, *common])
        lines.append(f"alias sl-{s}={shlex.quote(cmd)}")
    return lines


@guard
def main(argv: list[str]) -> int:
    args = parse(__doc__, "alias", argv)
    ctx = load_context(args)
    text = "\n".join(alias_lines(ctx, args, args["--prefix"] or "")) + "\n"
    out = args["--output"]
    if out == "-":
        sys.stdout.write(text)
        return 0
    path = os.path.expanduser(out)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise UsageError(f"cannot write {path!r}: {e.strerror}") from e
    print(f"wrote {len(ctx.devices)} device aliases and {len(CLUSTER_SCRIPTS) + 1} script aliases to {path}; "
          f"add `. {out}` to ~/.bashrc")
    return 0
