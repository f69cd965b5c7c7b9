"""Install this checkout as the systemd unit of a node on this machine (run as root).

Writes the template unit `silverline-node@.service` (from deploy/) into the unit directory with this
checkout's paths, the config file the unit reads (`ETC/config.json`: a copy of --cfg, else the
embedded defaults; an existing one is kept unless --force), the node's start.py arguments
(`ETC/NAME.env`: SILVERLINE_ARGS), and creates the dedicated system user the unit runs as.
Then `systemctl daemon-reload` (where systemd runs) and, with --enable, `enable --now`.
`manage.py start/kill/version/update` then find the node as `silverline-node@NAME`.

Usage:
    manage.py install [options] [-r RUNTIME]... [--] [<args>...]
    manage.py install -h | --help

Options:
    -n, --name NAME         Node name = unit instance (default: this machine's short hostname).
    -r, --runtime RUNTIME   Runtimes of the node (start.py -r; `-r a b` or `-r a -r b`; default: linux).
    -c, --cfg PATH          Config to install as ETC/config.json (default: $SL_CONFIG, else
                            ./config.json if present, else the embedded defaults).
    --user USER             System user the node runs as (created when missing) [default: silverline].
    --etc DIR               Where the config and NAME.env go [default: /etc/silverline].
    --unit-dir DIR          Where the unit goes [default: /etc/systemd/system].
    --python PATH           Interpreter of the node (default: this checkout's .venv/bin/python).
    --credentials DIR       The node's account from `manage.py acl -o DIR` (the fleet path, docs/cluster.md):
                            its password and the realm's CA go to ETC/NAME.pwd (0640) and ETC/ca.crt, and
                            ETC/config.json gets DIR/config/NAME.json's keys (broker, port, TLS, user).
    --force                 Overwrite an existing ETC/config.json and ETC/NAME.env.
    --enable                Also `systemctl enable --now silverline-node@NAME`.
    --print                 Print the unit as it would be written; change nothing.
    -v, --verbose LEVEL     Log level [default: WRN].

<args> are more start.py flags for this node, e.g. `-- -g 2 --worker-timeout 30`.
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile

from cli._api import CliError, config, guard, parse, setup

SUMMARY = "Install the systemd unit of a node on this machine (root)."

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(PROJECT, "deploy", "silverline-node@.service")
UNIT_FILE = "silverline-node@.service"
STATE_DIR = "/var/lib/silverline"  # the unit's StateDirectory=silverline


def unit_name(node: str) -> str:
    """The instance of the template unit that runs node `node` (the cluster tools use the same)."""
    return f"silverline-node@{node}.service"


def render_unit(*, project: str, python: str, user: str, etc: str, template: str = TEMPLATE) -> str:
    """The template of deploy/ with this installation's paths and user filled in."""
    with open(template, encoding="utf-8") as f:
        text = f.read()
    for key, value in (("@PROJECT@", project), ("@PYTHON@", python), ("@USER@", user), ("@ETC@", etc)):
        if any(c.isspace() for c in value):
            raise CliError(f"{key.strip('@').lower()} path {value!r} contains white space, which a unit's ExecStart cannot take")
        text = text.replace(key, value)
    return text


def env_file(runtimes: list[str], extra: list[str]) -> str:
    args = ["-r", *runtimes, *extra]
    return ("# start.py arguments of this node (read by silverline-node@.service); restart the unit after a change\n"
            f"SILVERLINE_ARGS={' '.join(shlex.quote(a) for a in args)}\n")


def _write(path: str, text: str, mode: int, *, owner: tuple[int, int] | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".sl-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    if owner is not None:
        os.chown(tmp, *owner)
    os.replace(tmp, path)


def ensure_user(user: str) -> tuple[int, int]:
    """(uid, gid) of `user`, creating it as a system user without login and home when missing."""
    try:
        pw = pwd.getpwnam(user)
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    if not os.path.exists(useradd):
        raise CliError(f"user {user!r} does not exist and there is no useradd to create it; create it, then run again")
    r = subprocess.run([useradd, "--system", "--user-group", "--no-create-home", "--home-dir", STATE_DIR,
                        "--shell", "/usr/sbin/nologin", "--comment", "SilverLine node", user],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise CliError(f"cannot create user {user!r}: {r.stderr.strip() or f'useradd exit status {r.returncode}'}")
    print(f"created system user {user}")
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def readable_by(uid: int, gid: int, path: str, *, execute: bool = False) -> bool:
    """Can uid/gid (not root) read (or execute) `path` and pass through every directory above it?
    Both the path as given and where its symbolic links lead (a venv's python points into another tree)."""
    groups = {gid} | {g.gr_gid for g in grp.getgrall() if pwd.getpwuid(uid).pw_name in g.gr_mem}
    return all(_chain_ok(p, uid, groups, execute) for p in {os.path.abspath(path), os.path.realpath(path)})


def _chain_ok(p: str, uid: int, groups: set[int], execute: bool) -> bool:
    chain = [p]
    while os.path.dirname(chain[-1]) != chain[-1]:
        chain.append(os.path.dirname(chain[-1]))
    for i, q in enumerate(chain):
        try:
            st = os.stat(q)
        except OSError:
            return False
        need = (0o1 if execute else 0o4) if i == 0 else 0o1  # the file: read or execute; the directories: search
        if st.st_uid == uid:
            bits = (st.st_mode >> 6) & 7
        elif st.st_gid in groups:
            bits = (st.st_mode >> 3) & 7
        else:
            bits = st.st_mode & 7
        if not bits & need:
            return False
    return True


def credentials(src: str, name: str, etc: str, gid: int) -> dict[str, object]:
    """Node `name`'s account from `manage.py acl -o SRC`, installed under ETC: the config keys to merge."""
    path = os.path.join(src, "config", f"{name}.json")
    try:
        with open(path, encoding="utf-8") as f:
            keys: dict[str, object] = json.load(f)
        with open(os.path.join(src, "passwords", name), encoding="utf-8") as f:
            password = f.read()
    except (OSError, ValueError) as e:
        raise CliError(f"--credentials {src}: no account {name!r} there ({e}): run `manage.py acl -o {src}` with this node's "
                       f"identity file ({STATE_DIR}/{name}.json, written at its first start) first") from None
    pwd_path = os.path.join(etc, f"{name}.pwd")
    _write(pwd_path, password, 0o640, owner=(0, gid))
    keys["pwd"] = pwd_path
    if keys.get("use_ssl") and isinstance(keys.get("ssl_ca"), str):
        with open(str(keys["ssl_ca"]), encoding="utf-8") as f:
            _write(os.path.join(etc, "ca.crt"), f.read(), 0o644)
        keys["ssl_ca"] = os.path.join(etc, "ca.crt")
    return keys


def _systemd_running() -> bool:
    return os.path.isdir("/run/systemd/system")  # sd_booted()


@guard("install")
def main(argv: list[str]) -> int:
    opts = parse(__doc__, "install", argv, multi=("-r", "--runtime"))
    setup(opts)
    name = opts["--name"] or socket.gethostname().split(".")[0]
    if not name or "/" in name or any(c.isspace() for c in name):
        raise CliError(f"--name {name!r}: a node name must be non-empty, without '/' or white space")
    runtimes = list(opts["--runtime"]) or ["linux"]
    extra = list(opts["<args>"])
    user, etc = str(opts["--user"]), os.path.abspath(str(opts["--etc"]))
    python = os.path.abspath(opts["--python"] or os.path.join(PROJECT, ".venv", "bin", "python"))
    if not os.access(python, os.X_OK):
        raise CliError(f"no interpreter at {python}: run `make env` in {PROJECT} first, or pass --python PATH")
    unit = render_unit(project=PROJECT, python=python, user=user, etc=etc)
    if opts["--print"]:
        print(unit, end="")
        return 0
    if os.geteuid() != 0:
        raise CliError("writing the unit and creating a user needs root: run it with sudo")
    cfg = config(opts)
    uid, gid = ensure_user(user)
    for path, ex in ((os.path.join(PROJECT, "start.py"), False), (python, True)):
        if not readable_by(uid, gid, path, execute=ex):
            raise CliError(f"user {user!r} cannot {'run' if ex else 'read'} {os.path.realpath(path)}: put the checkout and its "
                           f"interpreter where it can (e.g. /opt/silverline-node, a venv made from /usr/bin/python3) "
                           f"or give it access (chmod o+rx on each directory above)")
    unit_path = os.path.join(str(opts["--unit-dir"]), UNIT_FILE)
    _write(unit_path, unit, 0o644)
    print(f"wrote {unit_path}")
    cfg_path = os.path.join(etc, "config.json")
    if os.path.exists(cfg_path) and not opts["--force"]:
        print(f"kept {cfg_path} (--force overwrites it)")
    else:
        body = cfg.to_json()
        # the node runs as `user`: it must read the config and the password file
        _write(cfg_path, json.dumps(body, indent=2) + "\n", 0o640, owner=(0, gid))
        print(f"wrote {cfg_path}" + (f" (from {cfg.path})" if cfg.path else " (embedded defaults)"))
    if opts["--credentials"]:
        keys = credentials(str(opts["--credentials"]), name, etc, gid)
        with open(cfg_path, encoding="utf-8") as f:
            body = {**json.load(f), **keys}
        _write(cfg_path, json.dumps(body, indent=2) + "\n", 0o640, owner=(0, gid))
        print(f"wrote {cfg_path}: account {keys['mqtt_username']} on {keys['mqtt']}:{keys['mqtt_port']}"
              f"{' over TLS' if keys.get('use_ssl') else ''}, password in {keys['pwd']}")
        cfg.pwd = str(keys["pwd"])
    if cfg.pwd and not readable_by(uid, gid, os.path.expanduser(cfg.pwd)):
        print(f"warning: user {user!r} cannot read the MQTT password file {cfg.pwd}", file=sys.stderr)
    env_path = os.path.join(etc, f"{name}.env")
    if os.path.exists(env_path) and not opts["--force"]:
        print(f"kept {env_path} (--force overwrites it)")
    else:
        _write(env_path, env_file(runtimes, extra), 0o644)
        print(f"wrote {env_path}: start.py -n {name} {' '.join(['-r', *runtimes, *extra])}")
    inst = unit_name(name)
    if not _systemd_running():
        print(f"systemd is not running here: once it is, `systemctl daemon-reload && systemctl enable --now {inst}`")
        return 0
    steps = [["systemctl", "daemon-reload"]] + ([["systemctl", "enable", "--now", inst]] if opts["--enable"] else [])
    for cmd in steps:
        r = subprocess.run(cmd)
        if r.returncode != 0:
            raise CliError(f"`{' '.join(cmd)}` failed with exit status {r.returncode}")
    print(f"{inst} {'enabled and started' if opts['--enable'] else 'installed: systemctl enable --now ' + inst}")
    return 0
