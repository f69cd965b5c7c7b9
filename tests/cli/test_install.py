"""`manage.py install`: the systemd unit as deployed (deploy/). `systemd-analyze verify` must find
nothing to say about it; a real install (root) writes the unit, config and env file where the
unit reads them and creates the dedicated user the unit runs as."""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from cli.install import PROJECT, render_unit, unit_name
from cluster.remote import unit_of

ANALYZE = shutil.which("systemd-analyze")


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, os.path.join(PROJECT, "manage.py"), *args], cwd=PROJECT,
                          capture_output=True, text=True, timeout=120)


def verify(path: Path) -> str:
    """Everything systemd-analyze verify says about `path` (empty = clean)."""
    assert ANALYZE, "systemd-analyze is missing: apt-get install systemd (.ci/run does)"
    r = subprocess.run([ANALYZE, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return (r.stdout + r.stderr).strip()


def test_the_unit_verifies_clean_as_template_and_as_instance(tmp_path: Path) -> None:
    text = render_unit(project=PROJECT, python=sys.executable, user="silverline", etc="/etc/silverline")
    assert not re.search(r"@[A-Z]+@", text)  # every field filled in
    for name in ("silverline-node@.service", "silverline-node@node1.service"):
        (tmp_path / name).write_text(text)
        assert verify(tmp_path / name) == ""
    assert "User=silverline" in text and "RestartPreventExitStatus=2 4" in text and "WatchdogSec=" in text


def test_a_broken_unit_is_not_clean(tmp_path: Path) -> None:
    """The verify test can fail: a unit with a missing interpreter and an unknown key is reported."""
    text = render_unit(project=PROJECT, python="/nonexistent/python", user="silverline", etc="/etc/silverline")
    (tmp_path / "silverline-node@n.service").write_text(text.replace("WatchdogSec=", "WatchdogSecs="))
    r = subprocess.run([str(ANALYZE), "verify", str(tmp_path / "silverline-node@n.service")], capture_output=True, text=True)
    said = r.stdout + r.stderr
    assert "/nonexistent/python" in said and "WatchdogSecs" in said


def test_the_cluster_tools_name_the_unit_install_writes() -> None:
    assert unit_of("pi4") == unit_name("pi4") == "silverline-node@pi4.service"


def test_print_shows_the_unit_and_changes_nothing() -> None:
    r = manage("install", "--print", "-n", "n1")
    assert r.returncode == 0, r.stderr
    assert f"WorkingDirectory={PROJECT}" in r.stdout and "ExecStart=" in r.stdout


@pytest.fixture
def user() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.fail("this test installs a unit and creates a user: it runs as root (as CI does)")
    name = f"sltest{uuid.uuid4().hex[:6]}"
    yield name
    subprocess.run(["userdel", name], capture_output=True)
    subprocess.run(["groupdel", name], capture_output=True)


def test_install_writes_unit_config_env_and_creates_the_user(tmp_path: Path, user: str) -> None:
    cfg = tmp_path / "my-config.json"
    cfg.write_text(json.dumps({"mqtt": "broker.lab", "mqtt_port": 1884, "realm": "lab"}))
    units, etc = tmp_path / "units", tmp_path / "etc"
    args = ["install", "-n", "edge1", "-r", "linux", "test/echo", "--user", user, "--unit-dir", str(units),
            "--etc", str(etc), "-c", str(cfg), "--python", "/usr/bin/python3", "--", "-g", "0"]
    r = manage(*args)
    assert r.returncode == 0, r.stderr
    pw = pwd.getpwnam(user)
    assert pw.pw_uid != 0 and pw.pw_shell.endswith("nologin")
    unit = units / "silverline-node@.service"
    text = unit.read_text()
    assert f"User={user}" in text and f"-c {etc}/config.json" in text and f"EnvironmentFile=-{etc}/%i.env" in text
    installed = json.loads((etc / "config.json").read_text())
    assert (installed["mqtt"], installed["mqtt_port"], installed["realm"]) == ("broker.lab", 1884, "lab")
    st = os.stat(etc / "config.json")
    assert st.st_gid == pw.pw_gid and stat.S_IMODE(st.st_mode) == 0o640  # readable by the node, not by all
    assert (etc / "edge1.env").read_text().splitlines()[-1] == "SILVERLINE_ARGS=-r linux test/echo -g 0"
    (tmp_path / "silverline-node@edge1.service").write_text(text)
    assert verify(tmp_path / "silverline-node@edge1.service") == ""
    # a second install keeps the config the operator may have edited
    cfg.write_text(json.dumps({"mqtt": "other"}))
    r = manage(*args)
    assert r.returncode == 0 and "kept" in r.stdout
    assert json.loads((etc / "config.json").read_text())["mqtt"] == "broker.lab"


def test_install_refuses_an_interpreter_the_user_cannot_run(tmp_path: Path, user: str) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    py = private / "python"
    py.symlink_to("/usr/bin/python3")
    r = manage("install", "-n", "edge1", "--user", user, "--unit-dir", str(tmp_path / "u"), "--etc", str(tmp_path / "e"),
               "--python", str(py))
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert f"user {user!r} cannot run" in r.stderr
    assert not (tmp_path / "u").exists()


def test_install_credentials_of_the_fleet_path(tmp_path: Path, user: str) -> None:
    # issue #25: manage.py acl -o DIR (TLS by default), then install --credentials DIR gives the node its own account
    state = tmp_path / "state"
    state.mkdir()
    (state / "edge2.json").write_text(json.dumps({"manager": str(uuid.uuid4()), "runtimes": {"edge2": str(uuid.uuid4())}}))
    acl_dir = tmp_path / "acl"
    r = manage("acl", "-o", str(acl_dir), "--broker", "broker.lab", str(state / "edge2.json"))
    assert r.returncode == 0, r.stderr
    etc = tmp_path / "etc"
    r = manage("install", "-n", "edge2", "--user", user, "--unit-dir", str(tmp_path / "units"), "--etc", str(etc),
               "--python", "/usr/bin/python3", "--credentials", str(acl_dir))
    assert r.returncode == 0, r.stderr
    cfg = json.loads((etc / "config.json").read_text())
    assert cfg["mqtt"] == "broker.lab" and cfg["mqtt_port"] == 8883 and cfg["use_ssl"] is True
    assert cfg["mqtt_username"] == "edge2" and cfg["pwd"] == str(etc / "edge2.pwd") and cfg["ssl_ca"] == str(etc / "ca.crt")
    assert (etc / "edge2.pwd").read_text() == (acl_dir / "passwords" / "edge2").read_text()
    st = os.stat(etc / "edge2.pwd")
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == pwd.getpwnam(user).pw_gid
    assert (etc / "ca.crt").read_text() == (acl_dir / "tls" / "ca.crt").read_text()
    r = manage("install", "-n", "edge3", "--user", user, "--unit-dir", str(tmp_path / "units"), "--etc", str(etc),
               "--python", "/usr/bin/python3", "--credentials", str(acl_dir))
    assert r.returncode == 1 and "no account 'edge3'" in r.stderr
