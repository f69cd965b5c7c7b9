"""Nothing but our own text on a user's terminal (issue #22): `manage.py -h` and every script's
`-h` write their help to stdout and nothing to stderr, and none of them imports asyncssh (whose
import drags cryptography's DSA deprecation warnings along); a bare `manage.py` and an unknown
script are one line. The scripts are enumerated from cli/, not listed here."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cli import SCRIPTS, _register

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANAGE = os.path.join(ROOT, "manage.py")


def scripts() -> list[str]:
    _register()
    assert len(SCRIPTS) > 20, SCRIPTS  # enumeration found the package's modules
    return sorted(SCRIPTS)


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SL_CONFIG", "PYTHONWARNINGS")}
    return subprocess.run([sys.executable, MANAGE, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def test_manage_help_is_quiet() -> None:
    r = manage("-h")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for name in scripts():
        assert f"    {name} " in r.stdout, name


@pytest.mark.parametrize("script", scripts())
def test_every_script_help_is_quiet(script: str) -> None:
    r = manage(script, "-h")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "Usage:" in r.stdout and f"manage.py {script}" in r.stdout, r.stdout


def test_no_help_path_imports_asyncssh() -> None:
    """Stderr stays empty even when asyncssh is imported (its warnings are filtered), so this looks
    at the modules instead: one interpreter walks `manage.py -h`, bare, unknown and every `-h`."""
    probe = (
        "import contextlib, io, sys\n"
        "import cli\n"
        "cli._register()\n"
        "runs = [['-h'], [], ['nosuch']] + [[n, '-h'] for n in sorted(cli.SCRIPTS)]\n"
        "for argv in runs:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "        try:\n"
        "            cli.main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "    if 'asyncssh' in sys.modules:\n"
        "        print('imported by', argv)\n"
        "        break\n"
        "else:\n"
        "    print('none of', len(runs))\n"
    )
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("none of"), r.stdout + r.stderr


def test_the_cluster_scripts_do_import_it_quietly() -> None:
    """The other side of the seam: the helper really imports asyncssh, and none of the warnings
    of that import (cryptography's DSA deprecations, 5 of them without the filter) get through,
    even when every warning is asked for."""
    probe = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    from cluster.ssh import load_asyncssh\n"
        "    m = load_asyncssh()\n"
        "print(m.__name__, len(seen), [str(w.message) for w in seen])\n"
    )
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split()[:2] == ["asyncssh", "0"], r.stdout + r.stderr


@pytest.mark.parametrize("argv,needle", [([], "name a script to run"),
                                         (["stauts"], "unknown script 'stauts'; did you mean 'status'?"),
                                         (["nosuch"], "unknown script 'nosuch'")])
def test_no_script_or_an_unknown_one_is_one_line(argv: list[str], needle: str) -> None:
    r = manage(*argv)
    lines = r.stderr.splitlines()
    # bare, the script list comes on stdout (issue #27); a wrong name gets only the line
    assert r.returncode == 2 and (("    list " in r.stdout) if not argv else r.stdout == "") and len(lines) == 1, r.stderr
    assert lines[0].startswith("manage.py: ") and needle in lines[0] and "`python manage.py -h`" in lines[0], lines[0]


def new_shell_python() -> tuple[list[str], dict[str, str]]:
    """A `python` as a new shell finds it: the interpreter .venv was made from (sys.base_prefix),
    which lacks the project's packages; if that one has them, .venv's own without site-packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("SL_REEXEC", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONWARNINGS")}
    probe = "import importlib.util as u; print(u.find_spec('docopt') is None and u.find_spec('rich') is None)"
    for cmd in ([os.path.join(sys.base_prefix, "bin", "python3")], [os.path.join(ROOT, ".venv", "bin", "python"), "-S"]):
        if os.path.exists(cmd[0]):
            p = subprocess.run([*cmd, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
            if p.stdout.strip() == "True":
                return cmd, env
    pytest.fail("no Python without the project's packages to play the new shell's `python`")


@pytest.mark.parametrize("package", ["orchestrator", "collector"])
def test_python_m_works_in_a_new_shell(package: str) -> None:
    """The README's `python -m orchestrator` / `python -m collector`, typed from the checkout in a
    new shell: the package's `__main__` re-executes under .venv before anything third-party is
    imported (the package `__init__` imports none), so `-h` shows the help, quietly."""
    cmd, env = new_shell_python()
    p = subprocess.run([*cmd, "-m", package, "-h"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert "Usage:" in p.stdout and f"python -m {package}" in p.stdout, p.stdout


@pytest.mark.parametrize("package", ["orchestrator", "collector"])
def test_python_m_without_a_usable_venv_is_one_line(package: str) -> None:
    """When the re-exec cannot help (SL_REEXEC: it already happened once), one line says what to do."""
    cmd, env = new_shell_python()
    p = subprocess.run([*cmd, "-m", package, "-h"], capture_output=True, text=True, env={**env, "SL_REEXEC": "1"},
                       cwd=ROOT, timeout=120)
    lines = p.stderr.splitlines()
    assert p.returncode == 2 and p.stdout == "" and len(lines) == 1, p.stdout + p.stderr
    assert lines[0].startswith(f"{package}: this Python") and "make env" in lines[0] and f"`python -m {package}`" in lines[0]
