"""common/usage.py: one parse layer for manage.py, the cluster scripts and start.py; a usage
mistake is one line that names the option and what is expected (not docopt's internals)."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from cli import SCRIPTS, _register
from common.usage import UsageError, expand_multi, explain, number, option_specs, parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DOC = """Do a thing.

Usage:
    manage.py run [options] (-f FILE)... [-r RUNTIME]...
    manage.py run -h | --help

Options:
    -f, --file FILE         Module file.
    -r, --runtime RUNTIME   Target runtime.
    -n NAME --name=NAME     Module name [default: module].
    --copy N                Copies [default: 1].
    --no-wait               Do not wait.
    -v, --verbose LEVEL     Log level [default: WRN].
"""


def bad(argv: list[str]) -> str:
    with pytest.raises(UsageError) as e:
        parse(DOC, "manage.py run", argv, multi=("-f", "--file", "-r", "--runtime"))
    msg = str(e.value)
    assert "\n" not in msg and msg.endswith("(see `manage.py run -h`)"), msg
    assert "Option(" not in msg and "Argument(" not in msg and "Warning" not in msg, msg
    return msg


def test_option_specs_read_both_styles() -> None:
    specs = option_specs(DOC)
    assert specs["-f"].label == "-f/--file FILE" and specs["--name"].label == "-n/--name NAME"
    assert specs["--no-wait"].arg is None and specs["--copy"].arg == "N"


def test_missing_required_option_names_it() -> None:
    assert bad([]).startswith("-f/--file FILE is required")
    assert bad(["-r", "x"]).startswith("-f/--file FILE is required")


def test_unknown_option_suggests_the_closest() -> None:
    assert bad(["-f", "a", "--coppy", "2"]).startswith("unknown option --coppy; did you mean --copy N?")
    assert bad(["-f", "a", "-x"]).startswith("unknown option -x")


def test_option_without_its_value() -> None:
    assert bad(["-f", "a", "--copy"]).startswith("--copy expects a value (N)")
    assert bad(["-f", "a", "-r"]).startswith("-r/--runtime expects a value (RUNTIME)")
    assert bad(["-f", "a", "--no-wait=1"]).startswith("--no-wait takes no value")


def test_duplicate_single_option_is_not_docopt_internals() -> None:
    assert "given twice" in bad(["-f", "a", "-n", "x", "-n", "y"])


def test_good_lines_parse_and_multi_values_expand() -> None:
    opts = parse(DOC, "manage.py run", ["-f", "a", "b", "-r", "r1", "r2", "--verb", "INF"], multi=("-f", "-r"))
    assert opts["--file"] == ["a", "b"] and opts["--runtime"] == ["r1", "r2"] and opts["--verbose"] == "INF"
    assert opts["run"] is True


def test_expand_multi() -> None:
    flags = ("-f", "-r", "-a")
    assert expand_multi(["-f", "a", "b", "-n", "x", "-r", "r1", "r2", "-a", "1", "--copy", "3"], flags) == \
        ["-f", "a", "-f", "b", "-n", "x", "-r", "r1", "-r", "r2", "-a", "1", "--copy", "3"]
    assert expand_multi(["-a", "-x", "-a", "-y"], flags) == ["-a", "-x", "-a", "-y"]  # a dash value after its flag
    assert expand_multi(["-f", "a", "--", "b"], flags) == ["-f", "a", "--", "b"]


def test_number_names_the_option_and_range() -> None:
    with pytest.raises(UsageError, match=r"--copy must be at least 1, got '0'"):
        number({"--copy": "0"}, "--copy", int, 1)
    with pytest.raises(UsageError, match=r"--copy must be a whole number, got 'x'"):
        number({"--copy": "x"}, "--copy", int, 1)
    with pytest.raises(UsageError, match=r"--timeout must be more than 0"):
        number({"--timeout": "0"}, "--timeout", float, above=0)
    assert number({"--copy": None}, "--copy", int) is None and number({"--u": "0.5"}, "--u", float, 0, 1) == 0.5


def test_explain_positional_mistakes() -> None:
    doc = "Usage:\n    manage.py cmd [options] <command>...\n\nOptions:\n    -q, --quiet  Quiet.\n"
    assert explain(doc, "manage.py cmd", []).startswith("missing <command>")
    doc2 = "Usage:\n    manage.py list [options]\n\nOptions:\n    -q, --quiet  Quiet.\n"
    assert explain(doc2, "manage.py list", ["extra"]) == "unexpected argument 'extra'"


def _all_scripts() -> list[str]:
    _register()
    return sorted(SCRIPTS)


@pytest.mark.parametrize("script", _all_scripts())
def test_every_script_says_a_usage_mistake_in_one_line(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    mod = importlib.import_module(f"cli.{SCRIPTS[script]}")
    rc = mod.main(["--no-such-option"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"manage.py {script}: unknown option --no-such-option") and f"`manage.py {script} -h`" in err[0]


def test_start_py_usage_mistakes_are_one_line() -> None:
    for argv, needle in ((["-r", "linux"], "-n/--name NAME is required"), (["-n", "x", "--spn", "1"], "did you mean --spin SEC"),
                         (["-n", "x", "--spin", "-1"], "--spin must be at least 0"), (["-n", "x", "-g"], "-g/--cpus expects a value")):
        p = subprocess.run([sys.executable, os.path.join(ROOT, "start.py"), *argv], capture_output=True, text=True, timeout=60)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr


def test_a_new_shell_python_re_execs_under_the_venv(tmp_path: object) -> None:
    """The README's `python manage.py ...` in a new shell: a Python without the project's packages
    (here: the same interpreter without site-packages, -S) re-executes under .venv and works."""
    venv_python = os.path.join(ROOT, ".venv", "bin", "python")
    assert os.path.exists(venv_python), "make env creates .venv"
    env = {k: v for k, v in os.environ.items() if k not in ("SL_REEXEC", "VIRTUAL_ENV", "PYTHONPATH")}
    probe = subprocess.run([venv_python, "-S", "-c", "import importlib.util as u; print(u.find_spec('rich') is None)"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert probe.stdout.strip() == "True", "without site-packages the packages must be missing for this test to mean anything"
    for script, args, needle in (("manage.py", ["-h"], "Available scripts:"), ("start.py", ["--list-runtimes"], "linux")):
        p = subprocess.run([venv_python, "-S", os.path.join(ROOT, script), *args], capture_output=True, text=True,
                           env=env, cwd=str(tmp_path), timeout=120)
        assert p.returncode == 0 and needle in p.stdout, p.stderr
