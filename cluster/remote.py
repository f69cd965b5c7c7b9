"""Shell snippets run on the devices by start, kill, update, version, reboot and shutdown.

POSIX sh, no bash-isms (devices may have dash or busybox). They are built with Python string
formatting, not the `{field}` templates, since shell text is full of braces. A node started
without systemd is recorded in `<path>/.silverline.pid` so `kill` stops exactly that process.
"""
from __future__ import annotations

import shlex

UNIT = "silverline-node"
PIDFILE = ".silverline.pid"
LOGFILE = "silverline.log"


def sh_path(path: str) -> str:
    """Quote a remote path for sh but keep a leading `~/` expandable."""
    if path == "~":
        return "~"
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def _cd(path: str) -> str:
    p = sh_path(path)
    return f'cd {p} 2>/dev/null || {{ echo "no SilverLine checkout at {path} (pass --path, or clone it there)" >&2; exit 3; }}\n'


_HAS_UNIT = f"command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet {UNIT} 2>/dev/null"


def start_script(path: str, start_args: list[str]) -> str:
    """Start the node: the systemd unit when it is enabled, else `start.py` detached with nohup."""
    args = " ".join(shlex.quote(a) for a in start_args)
    return (
        _cd(path)
        + f"if {_HAS_UNIT}; then\n"
        + f"    systemctl start {UNIT} && echo 'started the systemd unit {UNIT}'; exit $?\n"
        + "fi\n"
        + f'if [ -f {PIDFILE} ] && kill -0 "$(cat {PIDFILE})" 2>/dev/null; then echo "already running (pid $(cat {PIDFILE}))"; exit 0; fi\n'
        + 'PY=.venv/bin/python; [ -x "$PY" ] || PY=python3\n'
        + "SETSID=; command -v setsid >/dev/null 2>&1 && SETSID=setsid\n"
        + f'$SETSID nohup "$PY" start.py {args} >{LOGFILE} 2>&1 </dev/null &\n'
        + f"pid=$!; echo $pid >{PIDFILE}\n"
        + "sleep 1\n"
        + f'if kill -0 $pid 2>/dev/null; then echo "started pid $pid (log: {path}/{LOGFILE})"; exit 0; fi\n'
        + f'echo "start.py exited at once; end of {LOGFILE}:" >&2; tail -n 20 {LOGFILE} >&2; rm -f {PIDFILE}; exit 1\n'
    )


def kill_script(path: str, grace_s: int = 10) -> str:
    """Stop the node: the systemd unit when active, else the recorded pid (TERM, then KILL after `grace_s`)."""
    ticks = grace_s * 10
    return (
        _cd(path)
        + f"if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet {UNIT} 2>/dev/null; then\n"
        + f"    systemctl stop {UNIT} && echo 'stopped the systemd unit {UNIT}'; exit $?\n"
        + "fi\n"
        + f'[ -f {PIDFILE} ] || {{ echo "not running (no {PIDFILE} in {path})"; exit 0; }}\n'
        + f"pid=$(cat {PIDFILE})\n"
        + f'kill -0 "$pid" 2>/dev/null || {{ echo "not running (stale pid $pid)"; rm -f {PIDFILE}; exit 0; }}\n'
        # the pid may have been reused by an unrelated process since: check it is start.py
        + 'if [ -r /proc/$pid/cmdline ] && ! tr "\\0" " " </proc/$pid/cmdline | grep -q "start.py"; then\n'
        + f'    echo "pid $pid is not start.py any more; not killing it"; rm -f {PIDFILE}; exit 0\n'
        + "fi\n"
        + 'kill -TERM "$pid"\n'
        + f'i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done\n'
        + f'if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "killed pid $pid (SIGKILL after {grace_s} s)"; else echo "stopped pid $pid"; fi\n'
        + f"rm -f {PIDFILE}\n"
    )


def update_script(path: str) -> str:
    """Pull the checkout (fast-forward only) and reinstall into its venv."""
    return (
        _cd(path)
        + "git pull --ff-only || exit $?\n"
        + 'if [ -x .venv/bin/pip ]; then .venv/bin/pip install -q -e . || exit $?; else make env || exit $?; fi\n'
        + 'echo "now at $(git rev-parse --short HEAD)"\n'
    )


def version_script(path: str) -> str:
    """Print `<commit hash> <commit date>` and `(modified)` when the checkout has local changes."""
    return (
        _cd(path)
        + 'h=$(git rev-parse HEAD) || exit $?\n'
        + 'd=$(git log -1 --format=%cI)\n'
        + 'm=; [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && m=" (modified)"\n'
        + 'echo "$h $d$m"\n'
    )


def power_script(what: str) -> str:
    """Reboot or power off after 1 s, detached, so the SSH session ends cleanly first."""
    cmd = {"reboot": "systemctl reboot || reboot", "shutdown": "systemctl poweroff || shutdown -h now"}[what]
    return f"nohup sh -c 'sleep 1; {cmd}' >/dev/null 2>&1 </dev/null &\necho '{what} in 1 s'\n"
