"""Pure logic of the cluster package: templates, remote paths, result lines, sudo wrapping."""
from __future__ import annotations

import shlex

import pytest

from cluster.fanout import Result
from cluster.remote import sh_path
from cluster.report import Reporter
from cluster.ssh import sudo_wrap
from cluster.templates import TemplateError, render
from cluster.transfer import remote_path
from common.manifest import Device

DEV = Device(name="pi4", arch="aarch64", cgroup="v2", triple="aarch64-unknown-linux-gnu")


def test_render_fields_and_literal_braces() -> None:
    assert render("{name}.{domain}/{arch} {{x}}", DEV, domain="lab") == "pi4.lab/aarch64 {x}"
    assert render("{fullname}", DEV, domain="lab") == "pi4.lab"
    assert render("{fullname}", DEV) == "pi4"
    assert render("{file}", DEV, extra={"file": "a"}) == "a"


@pytest.mark.parametrize("template, msg", [("{nope}", "unknown field {nope}"), ("{}", "positional"), ("{name", "bad template")])
def test_render_errors(template: str, msg: str) -> None:
    with pytest.raises(TemplateError, match=msg.replace("{", r"\{")):
        render(template, DEV)


def test_paths() -> None:
    assert remote_path("~/a/b") == "a/b" and remote_path("~") == "." and remote_path("/x") == "/x"
    assert sh_path("~/my dir") == "~/'my dir'" and sh_path("/a b") == "'/a b'"


def test_sudo_wrap_quotes_the_command() -> None:
    wrapped = sudo_wrap("echo 'a b'; id")
    assert wrapped.startswith("sudo -S -p '' -- sh -c ")
    assert shlex.split(wrapped)[-1] == "exec </dev/null; echo 'a b'; id"


def test_result_lines() -> None:
    rep = Reporter("t", 4, width=6)
    assert rep.line(Result("a", status=0, seconds=0.5)).plain == "a       ok  exit 0  (0.50s)"
    assert "FAILED  exit 3" in rep.line(Result("b", status=3)).plain
    assert "UNREACHABLE  refused" in rep.line(Result("c", error="refused", unreachable=True)).plain
    assert "SKIPPED" in rep.line(Result("d", skipped=True, error="skipped")).plain


def test_remote_scripts_are_posix_sh_in_every_branch() -> None:
    """The systemd branches of start/kill/version/update cannot run here (no systemd as PID 1): dash
    must at least parse every script, with the unit name of the node and odd paths."""
    import subprocess

    from cluster.remote import kill_script, start_script, unit_of, update_script, version_script

    scripts = [start_script("~/silverline node", ["-n", "pi4", "-r", "linux"], "pi4"),
               kill_script("silverline-node", 5, "pi4"), kill_script("silverline-node", 5, "pi4", end_modules=True),
               version_script("/opt/sl", "pi4"), update_script("~/x'y", "pi4")]
    for text in scripts:
        r = subprocess.run(["dash", "-n"], input=text, capture_output=True, text=True)
        assert r.returncode == 0, (r.stderr, text)
    assert "silverline-node@pi4.service" in scripts[0] and unit_of("pi4") == "silverline-node@pi4.service"
    assert "SIGUSR1" in scripts[2] and "kill -USR1" in scripts[2] and "kill -TERM" in scripts[1]
