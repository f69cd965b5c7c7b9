"""Shell snippets run on the devices by start, kill, update, version, reboot and shutdown.

POSIX sh, no bash-isms (devices may have dash or busybox). They are built with Python string
formatting, not the `{field}` templates, since shell text is full of braces. A node started
without systemd is recorded in `<path>/.silverline.pid` so `kill` stops exactly that process.
"""
from __future__ import annotations

import shlex

UNIT = "silverline-node@{}.service"  # the template instance of a node (`manage.py install`, deploy/)
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


def unit_of(node: str) -> str:
    """The systemd unit that runs node `node` (an instance of silverline-node@.service)."""
    return UNIT.format(node)


def _systemctl(unit: str, test: str) -> str:
    return f"command -v systemctl >/dev/null 2>&1 && systemctl {test} --quiet {shlex.quote(unit)} 2>/dev/null"


def _cd_node(path: str, unit: str) -> str:
    """cd into the node's checkout: the unit's WorkingDirectory when the unit is installed, else `path`."""
    u = shlex.quote(unit)
    return (
        "d=\nif command -v systemctl >/dev/null 2>&1 && "
        + f'[ "$(systemctl show -p LoadState --value {u} 2>/dev/null)" = loaded ]; then\n'
        + f"    d=$(systemctl show -p WorkingDirectory --value {u} 2>/dev/null)\n"
        + "fi\n"
        + f'if [ -n "$d" ]; then cd "$d" || {{ echo "{unit}: its WorkingDirectory $d is missing" >&2; exit 3; }}\n'
        + "else " + _cd(path).rstrip("\n") + "\nfi\n"
    )


def start_script(path: str, start_args: list[str], node: str) -> str:
    """Start the node: its systemd unit when that is enabled or active, else `start.py` detached with nohup."""
    args = " ".join(shlex.quote(a) for a in start_args)
    unit = unit_of(node)
    return (
        f"if {_systemctl(unit, 'is-active')}; then echo 'already running (systemd unit {unit})'; exit 0; fi\n"
        + f"if {_systemctl(unit, 'is-enabled')}; then\n"
        + f"    systemctl start {shlex.quote(unit)} && echo 'started the systemd unit {unit}'; exit $?\n"
        + "fi\n"
        + _cd(path)
        + f'if [ -f {PIDFILE} ] && kill -0 "$(cat {PIDFILE})" 2>/dev/null; then echo "already running (pid $(cat {PIDFILE}))"; exit 0; fi\n'
        + 'PY=.venv/bin/python; [ -x "$PY" ] || PY=python3\n'
        + "SETSID=; command -v setsid >/dev/null 2>&1 && SETSID=setsid\n"
        + f'$SETSID nohup "$PY" start.py {args} >{LOGFILE} 2>&1 </dev/null &\n'
        + f"pid=$!; echo $pid >{PIDFILE}\n"
        + "sleep 1\n"
        + f'if kill -0 $pid 2>/dev/null; then echo "started pid $pid (log: {path}/{LOGFILE})"; exit 0; fi\n'
        + f'echo "start.py exited at once; end of {LOGFILE}:" >&2; tail -n 20 {LOGFILE} >&2; rm -f {PIDFILE}; exit 1\n'
    )


def kill_script(path: str, grace_s: int = 10, node: str = "", end_modules: bool = False) -> str:
    """Stop the node: its systemd unit when active, else the recorded pid (TERM, then KILL after `grace_s`).
    SIGTERM is a stop for a restart (modules resurrectable); `end_modules` sends SIGUSR1 instead (they end)."""
    ticks = grace_s * 10
    unit = unit_of(node)
    sig = "USR1" if end_modules else "TERM"
    stop_unit = (f"systemctl kill --kill-who=main -s SIGUSR1 {shlex.quote(unit)} && "
                 f"i=0; while systemctl is-active --quiet {shlex.quote(unit)} && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done; "
                 f"systemctl stop {shlex.quote(unit)}" if end_modules else f"systemctl stop {shlex.quote(unit)}")
    return (
        f"if {_systemctl(unit, 'is-active')}; then\n"
        + f"    {stop_unit} && echo 'stopped the systemd unit {unit}'; exit $?\n"
        + "fi\n"
        + _cd(path)
        + f'[ -f {PIDFILE} ] || {{ echo "not running (no {PIDFILE} in {path})"; exit 0; }}\n'
        + f"pid=$(cat {PIDFILE})\n"
        + f'kill -0 "$pid" 2>/dev/null || {{ echo "not running (stale pid $pid)"; rm -f {PIDFILE}; exit 0; }}\n'
        # the pid may have been reused by an unrelated process since: check it is start.py
        + 'if [ -r /proc/$pid/cmdline ] && ! tr "\\0" " " </proc/$pid/cmdline | grep -q "start.py"; then\n'
        + f'    echo "pid $pid is not start.py any more; not killing it"; rm -f {PIDFILE}; exit 0\n'
        + "fi\n"
        + f'kill -{sig} "$pid"\n'
        + f'i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done\n'
        + f'if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "killed pid $pid (SIGKILL after {grace_s} s)"; else echo "stopped pid $pid"; fi\n'
        + f"rm -f {PIDFILE}\n"
    )


def update_script(path: str, node: str = "") -> str:
    """Pull the checkout (the unit's when installed) fast-forward only and install its lock into its venv."""
    return (
        _cd_node(path, unit_of(node))
        + "git pull --ff-only || exit $?\n"
        + "make -s env || exit $?\n"  # installs exactly the checkout's lock (requirements/venv.lock)
        + 'echo "now at $(git rev-parse --short HEAD)"\n'
    )


def version_script(path: str, node: str = "") -> str:
    """Print `<commit hash> <commit date>` (of the unit's checkout when installed) and `(modified)`."""
    return (
        _cd_node(path, unit_of(node))
        + 'h=$(git rev-parse HEAD) || exit $?\n'
        + 'd=$(git log -1 --format=%cI)\n'
        + 'm=; [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && m=" (modified)"\n'
        + 'echo "$h $d$m"\n'
    )


def power_script(what: str) -> str:
    """Reboot or power off after 1 s, detached, so the SSH session ends cleanly first."""
    cmd = {"reboot": "systemctl reboot || reboot", "shutdown": "systemctl poweroff || shutdown -h now"}[what]
    return f"nohup sh -c 'sleep 1; {cmd}' >/dev/null 2>&1 </dev/null &\necho '{what} in 1 s'\n"
