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
    assert r.returncode == 2 and r.stdout == "" and len(lines) == 1, r.stderr
    assert lines[0].startswith("manage.py: ") and needle in lines[0] and "`python manage.py -h`" in lines[0], lines[0]
