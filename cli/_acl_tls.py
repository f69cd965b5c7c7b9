"""TLS for a realm (`manage.py acl`, on by default): a CA and the broker's certificate made with the
openssl command line (Debian's `openssl` package), the mosquitto listener lines, and each account's
config.json keys (issue #25: the fleet path gives every node and the orchestrator its own
credentials, over TLS).

Files in DIR/tls: ca.crt (give it to every client), ca.key (keep it: re-running keeps the CA and
re-issues the broker certificate only when its names changed), broker.crt, broker.key (0600).
DIR/mosquitto-tls.conf: a `listener PORT` block with the certificate and the auth lines.
DIR/config/USER.json: the keys of that account's config.json (broker, port, TLS, user, password file).
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess

from cli._api import CliError

TLS_PORT = 8883
DAYS = 3650


def _openssl(*args: str) -> None:
    exe = shutil.which("openssl") or "/usr/bin/openssl"
    if not os.path.exists(exe):
        raise CliError("TLS needs the openssl command line (apt-get install openssl), or pass --no-tls for a broker on loopback only")
    r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise CliError(f"openssl {args[0]} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")


def san(names: list[str]) -> str:
    """subjectAltName for `names` (host names and addresses), plus localhost and 127.0.0.1."""
    out: list[str] = []
    for n in dict.fromkeys([*names, "localhost", "127.0.0.1"]):
        try:
            ipaddress.ip_address(n)
            out.append(f"IP:{n}")
        except ValueError:
            out.append(f"DNS:{n}")
    return "subjectAltName=" + ",".join(out)


def make_tls(out: str, broker: str) -> dict[str, str]:
    """The CA (kept when it exists) and a broker certificate for `broker`; paths by role."""
    d = os.path.join(out, "tls")
    os.makedirs(d, mode=0o700, exist_ok=True)
    p = {k: os.path.join(d, f) for k, f in (("ca", "ca.crt"), ("ca_key", "ca.key"), ("cert", "broker.crt"),
                                            ("key", "broker.key"), ("san", "broker.san"))}
    if not (os.path.exists(p["ca"]) and os.path.exists(p["ca_key"])):
        _openssl("req", "-x509", "-newkey", "rsa:3072", "-nodes", "-keyout", p["ca_key"], "-out", p["ca"], "-days", str(DAYS),
                 "-subj", "/CN=silverline realm CA")
    want = san([broker])
    have = ""
    if os.path.exists(p["san"]):
        with open(p["san"], encoding="utf-8") as f:
            have = f.read().strip()
    if have != want or not os.path.exists(p["cert"]):
        csr = os.path.join(d, "broker.csr")
        ext = os.path.join(d, "broker.ext")
        with open(ext, "w", encoding="utf-8") as f:
            f.write(want + "\n")
        _openssl("req", "-newkey", "rsa:3072", "-nodes", "-keyout", p["key"], "-out", csr, "-subj", f"/CN={broker}")
        _openssl("x509", "-req", "-in", csr, "-CA", p["ca"], "-CAkey", p["ca_key"], "-CAcreateserial", "-out", p["cert"],
                 "-days", str(DAYS), "-extfile", ext)
        os.unlink(csr)
        with open(p["san"], "w", encoding="utf-8") as f:
            f.write(want + "\n")
    for k in ("ca_key", "key"):
        os.chmod(p[k], 0o600)
    return p


def tls_conf(out: str, tls: dict[str, str], port: int) -> str:
    absout = os.path.abspath(out)
    return (f"# include in mosquitto.conf (written by manage.py acl; docs/security.md, \"Fleet\")\nper_listener_settings true\n"
            f"listener {port}\ncafile {tls['ca']}\ncertfile {tls['cert']}\nkeyfile {tls['key']}\ntls_version tlsv1.2\n"
            f"allow_anonymous false\nuse_username_as_clientid true\npassword_file {absout}/mosquitto.passwd\n"
            f"acl_file {absout}/mosquitto.acl\n")


def account_configs(out: str, users: list[str], broker: str, port: int, tls: dict[str, str] | None, realm: str) -> None:
    """DIR/config/USER.json: what goes into that account's config.json."""
    d = os.path.join(out, "config")
    os.makedirs(d, mode=0o700, exist_ok=True)
    absout = os.path.abspath(out)
    for u in users:
        cfg: dict[str, object] = {"mqtt": broker, "mqtt_port": port, "realm": realm, "mqtt_username": u,
                                  "pwd": f"{absout}/passwords/{u}"}
        if tls is not None:
            cfg.update({"use_ssl": True, "ssl_ca": os.path.abspath(tls["ca"])})
        path = os.path.join(d, f"{u}.json")
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=1)
            f.write("\n")
        os.replace(path + ".tmp", path)
