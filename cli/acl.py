"""Write the mosquitto password and ACL files of a realm: each node may use only its own topics.

Usage:
    manage.py acl -o DIR [--realm REALM] [--channel TOPIC]... [--rotate] [--module-root DIRS]
                  [--broker HOST] [--port PORT] [--no-tls]
                  [--orchestrator-user USER] [--cli-user USER]... [--collector-user USER] <state-file>...
    manage.py acl -h | --help

Arguments:
    <state-file>               A node's identity file (`STATE_DIR/NAME.json`, written by start.py at its
                               first start: {"manager": uuid, "runtimes": {name: uuid}}); the node's
                               account is NAME.

Options:
    -o DIR, --out DIR          Where the files go: mosquitto.passwd (hashed, PBKDF2-SHA512 as
                               mosquitto_passwd writes them), mosquitto.acl, mosquitto-auth.conf (the
                               lines for mosquitto.conf), identities.json (which uuid is which name, for
                               the orchestrator's `identities` key) and passwords/USER (each account's
                               password, mode 0600, for the `pwd` key of that account's config.json).
                               DIR must not lie inside a module root (a module could read the passwords).
    --realm REALM              The realm [default: realm].
    --broker HOST              The broker's host name or address as the nodes reach it: the TLS
                               certificate's name and the `mqtt` of every account's config (default:
                               this machine's fully qualified name).
    --port PORT                The broker's TLS listener port (with --no-tls: its plain port) [default: 8883].
    --no-tls                   No CA, no certificate: for a broker the nodes reach on loopback or a
                               network nobody else is on (passwords then cross it in clear).
    --channel TOPIC            An application channel topic (filter) the nodes may use, e.g. 'apps/#'.
    --rotate                   New passwords for every account (default: keep those in DIR/passwords).
    --orchestrator-user USER   The orchestrator's account [default: orchestrator].
    --cli-user USER            An account of manage.py; repeat it for one per operator or tool that may
                               be connected at the same time [default: cli].
    --module-root DIRS         The nodes' module roots (`:`-separated) that DIR must stay out of
                               (default: the project's build/modules and the `module_root` settings of
                               $SL_CONFIG or ./config.json).
    --collector-user USER      The profile collector's account [default: collector].

Who may do what (everything else is refused; there is no anonymous access):
    a node NAME   its manager's and runtimes' `proc/reg/UUID`, `proc/keepalive/RT`, `proc/control/RT`
                  (creates arrive, exited leaves), `proc/profile/+/RT/#`, `proc/stdio/RT/#` (its
                  modules' stdio), read `proc/orchestrator` and `proc/stored/RT` (a collector's acks
                  of its results), and the application channel topics given with --channel
    orchestrator  all of `{realm}/proc/#`: only it publishes creates on a runtime's control topic
    cli           publish `proc/control` (requests to the orchestrator) and `proc/stdio/#` (stdin),
                  read `{realm}/proc/#`
    collector     read `{realm}/proc/#`, publish `proc/stored/#` (acks of the results it stored)
Every account is bound to its client id (`use_username_as_clientid`): nobody can take over another
account's session, and one account is one connection at a time (hence one --cli-user per operator).
A runtime uuid may belong to one node only (exit 1 otherwise).

Examples:
    manage.py acl -o /etc/mosquitto/silverline /var/lib/silverline/dev1.json /var/lib/silverline/dev2.json
    manage.py acl -o /tmp/sl-acl --realm lab --channel 'lab/apps/#' --cli-user alice --cli-user bob state/*.json
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import socket
from dataclasses import dataclass

from cli import _acl_tls as acl_tls
from cli._api import CliError, guard, parse
from common.jsonfile import JsonFileError, read_object
from runtimes.files import default_roots
from supervisor.identity import is_uuid

SUMMARY = "Write the mosquitto password and ACL files of a realm (each node only its own topics)."

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default for $7$ (PBKDF2-SHA512)


@dataclass
class NodeIdentity:
    name: str
    manager: str
    runtimes: dict[str, str]


def password_hash(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A mosquitto 2.0 password file hash: `$7$ITERATIONS$SALT$HASH` (base64, PBKDF2-HMAC-SHA512)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"



def load_identity(path: str) -> NodeIdentity:
    """A node's identity file; CliError naming the file and what is wrong."""
    name = os.path.basename(path)
    if not name.endswith(".json"):
        raise CliError(f"{path}: expected a node's identity file STATE_DIR/NAME.json (start.py writes it at its first start)")
    try:
        raw = read_object(path)
    except JsonFileError as e:
        raise CliError(str(e)) from None
    if not is_uuid(raw.get("manager")) or not isinstance(raw.get("runtimes"), dict):
        raise CliError(f"{path}: expected {{\"manager\": UUID, \"runtimes\": {{NAME: UUID}}}}")
    bad = [k for k, v in raw["runtimes"].items() if not is_uuid(v)]
    if bad:
        raise CliError(f"{path}: runtime {bad[0]!r} has no valid uuid")
    return NodeIdentity(name[:-5], raw["manager"], dict(raw["runtimes"]))


def _check_user(user: str, what: str) -> None:
    if not user or any(c in user for c in ":\n\r# ") or user.startswith("$"):
        raise CliError(f"{what}: {user!r} is not a usable broker account name (no ':', spaces or '#')")


def check_unique(nodes: list[NodeIdentity]) -> None:
    """CliError when a uuid (manager or runtime) belongs to two nodes, or twice to one."""
    owner: dict[str, str] = {}
    for n in nodes:
        for what, u in [("manager", n.manager)] + [(f"runtime {k!r}", v) for k, v in n.runtimes.items()]:
            if u in owner:
                raise CliError(f"uuid {u} is {what} of node {n.name!r} and already {owner[u]}: one identity file was "
                               f"copied from another; delete the copy's STATE_DIR/NAME.json, start that node once "
                               f"(it draws new uuids) and run acl again")
            owner[u] = f"{what} of node {n.name!r}"


def acl_text(realm: str, nodes: list[NodeIdentity], channels: list[str], orchestrator: str, cli: str | list[str],
             collector: str) -> str:
    """The mosquitto ACL file (no anonymous section: anonymous clients get nothing)."""
    p = f"{realm}/proc"
    lines = ["# written by `manage.py acl` (docs/security.md); anonymous clients have no rights",
             "", f"user {orchestrator}", f"topic readwrite {p}/#"]
    for c in [cli] if isinstance(cli, str) else cli:
        lines += ["", f"user {c}", f"topic read {p}/#", f"topic write {p}/control", f"topic write {p}/stdio/#"]
    lines += ["", f"user {collector}", f"topic read {p}/#", f"topic write {p}/stored/#"]
    for n in nodes:
        lines += ["", f"user {n.name}", f"topic readwrite {p}/reg/{n.manager}", f"topic read {p}/orchestrator"]
        for rt in sorted(n.runtimes.values()):
            lines += [f"topic readwrite {p}/reg/{rt}", f"topic write {p}/keepalive/{rt}",
                      f"topic readwrite {p}/control/{rt}", f"topic write {p}/profile/+/{rt}/#",
                      f"topic read {p}/stored/{rt}", f"topic readwrite {p}/stdio/{rt}/#"]
        lines += [f"topic readwrite {c}" for c in channels]
    return "\n".join(lines) + "\n"


def identities(nodes: list[NodeIdentity]) -> dict[str, dict[str, str]]:
    """uuid -> {kind, name} of every manager and runtime (the orchestrator's `identities` file)."""
    out = {n.manager: {"kind": "manager", "name": n.name} for n in nodes}
    out.update({u: {"kind": "runtime", "name": k} for n in nodes for k, u in n.runtimes.items()})
    return out


def _password(out: str, user: str, rotate: bool) -> str:
    d = os.path.join(out, "passwords")
    os.makedirs(d, mode=0o700, exist_ok=True)
    path = os.path.join(d, user)
    if not rotate and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            pw = f.read().strip()
        if pw:
            return pw
    pw = secrets.token_urlsafe(24)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(pw + "\n")
    os.replace(path + ".tmp", path)
    return pw


def _write(path: str, text: str, mode: int) -> None:
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def write_realm(out: str, realm: str, nodes: list[NodeIdentity], channels: list[str], *, orchestrator: str = "orchestrator",
                cli: str | list[str] = "cli", collector: str = "collector", rotate: bool = False) -> dict[str, str]:
    """Write the files; return account -> password."""
    clis = [cli] if isinstance(cli, str) else list(cli)
    check_unique(nodes)
    users = [orchestrator, *clis, collector] + [n.name for n in nodes]
    seen: set[str] = set()
    for u in users:
        if u in seen:
            raise CliError(f"account {u!r} appears twice (two nodes of that name, or a node named like a service account)")
        seen.add(u)
    os.makedirs(out, exist_ok=True)
    passwords = {u: _password(out, u, rotate) for u in users}
    _write(os.path.join(out, "mosquitto.passwd"), "".join(f"{u}:{password_hash(pw)}\n" for u, pw in passwords.items()), 0o640)
    _write(os.path.join(out, "mosquitto.acl"), acl_text(realm, nodes, channels, orchestrator, clis, collector), 0o640)
    _write(os.path.join(out, "identities.json"), json.dumps(identities(nodes), indent=1) + "\n", 0o644)
    absout = os.path.abspath(out)
    # use_username_as_clientid: an account's client id is its name, so no account can take over (kick)
    # another's session, e.g. the orchestrator's or a node's (whose last will would then fire)
    _write(os.path.join(out, "mosquitto-auth.conf"),
           f"# include in mosquitto.conf (per listener with per_listener_settings true)\nallow_anonymous false\n"
           f"use_username_as_clientid true\npassword_file {absout}/mosquitto.passwd\nacl_file {absout}/mosquitto.acl\n", 0o644)
    return passwords


def _roots(given: object) -> list[str]:
    """The module roots DIR must stay out of: --module-root, else the default and the config's settings."""
    if given:
        return [r for r in str(given).split(":") if r]
    roots = list(default_roots())
    path = os.environ.get("SL_CONFIG") or "config.json"
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError):
        return roots
    rts = cfg.get("runtimes") if isinstance(cfg, dict) else None
    for section in (rts.values() if isinstance(rts, dict) else []):
        r = section.get("module_root") if isinstance(section, dict) else None
        roots += [r] if isinstance(r, str) else [str(x) for x in r] if isinstance(r, list) else []
    return [x for r in roots for x in r.split(":") if x]


def inside_module_root(out: str, roots: list[str]) -> str | None:
    """The module root that `out` (existing or not) lies in, if any."""
    real = os.path.realpath(out)
    for r in roots:
        rr = os.path.realpath(os.path.expanduser(r))
        if os.path.commonpath([rr, real]) == rr:
            return rr
    return None


@guard("acl")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "acl", argv)
    realm = str(opts["--realm"])
    if not realm or any(c in realm for c in "+#/ "):
        raise CliError(f"--realm: {realm!r} is not a usable realm (no '/', '+', '#', spaces)")
    for key in ("--orchestrator-user", "--collector-user"):
        _check_user(str(opts[key]), key)
    channels = list(opts["--channel"] or [])
    for c in channels:
        if not c or c.startswith(f"{realm}/proc") or c in ("#", "+/#"):
            raise CliError(f"--channel: {c!r} would open the realm's control topics to every node; name the "
                           f"application topics (e.g. '{realm}/apps/#')")
    clis = list(dict.fromkeys(opts["--cli-user"] or ["cli"]))
    for c in clis:
        _check_user(c, "--cli-user")
    nodes = [load_identity(p) for p in opts["<state-file>"]]
    for n in nodes:
        _check_user(n.name, f"node {n.name!r}")
    out = str(opts["--out"])
    root = inside_module_root(out, _roots(opts["--module-root"]))
    if root is not None:
        raise CliError(f"-o {out}: inside the module root {root}, where any module could read the passwords; "
                       f"write them elsewhere (e.g. /etc/mosquitto/silverline)")
    write_realm(out, realm, nodes, channels, orchestrator=str(opts["--orchestrator-user"]), cli=clis,
                collector=str(opts["--collector-user"]), rotate=bool(opts["--rotate"]))
    broker = str(opts["--broker"] or socket.getfqdn())
    try:
        port = int(str(opts["--port"]))
    except ValueError:
        raise CliError(f"--port: expected a port number, got {opts['--port']!r}") from None
    tls = None if opts["--no-tls"] else acl_tls.make_tls(out, broker)
    users = [str(opts["--orchestrator-user"]), *clis, str(opts["--collector-user"])] + [n.name for n in nodes]
    acl_tls.account_configs(out, users, broker, port, tls, realm)
    absout = os.path.abspath(out)
    if tls is not None:
        _write(os.path.join(out, "mosquitto-tls.conf"), acl_tls.tls_conf(out, tls, port), 0o644)
    print(f"wrote {out}/mosquitto.passwd, mosquitto.acl, mosquitto-auth.conf{', mosquitto-tls.conf, tls/' if tls else ''}, "
          f"identities.json, passwords/ and config/ ({len(nodes)} nodes; realm {realm}; broker {broker}:{port})")
    print(f"mosquitto.conf: include {absout}/{'mosquitto-tls.conf' if tls else 'mosquitto-auth.conf'}; each account's "
          f"config.json: the keys of {absout}/config/USER.json (manage.py install --credentials {absout} does it for a node); "
          f"the orchestrator: --identities {absout}/identities.json")
    return 0
