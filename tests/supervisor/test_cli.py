"""start.py's command line: runtime names like the seed, errors, CPU lists."""
from __future__ import annotations

import os

import pytest

from supervisor import cli


def test_cli_names_runtimes_like_the_seed(tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config.json here: embedded defaults
    s = cli.build_settings(["-n", "x", "-r", "test/echo", "test/reg", "test/echo", "--no-state"])
    assert s is not None
    assert [r.full_name for r in s.runtimes] == ["x.echo", "x.reg", "x.echo2"]
    s = cli.build_settings(["-n", "x", "-r", "test/reg", "--no-state"])
    assert s is not None and s.runtimes[0].full_name == "x" and s.config.mqtt == "localhost" and s.config.realm == "realm"


def test_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-n", "x", "-r", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown runtime 'nope'" in err and "test/echo" in err
    assert cli.main(["-n", "x", "-r", "test/reg", "--mqtt", "nohostport"]) == 2
    assert "--mqtt" in capsys.readouterr().err
    assert cli.main(["-n", "x", "-r", "test/reg", "-g", "999"]) == 2
    assert "not available" in capsys.readouterr().err
    assert cli.main(["-n", "x", "-r", "test/reg", "-c", "/nonexistent.json"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cpu_lists() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    assert cli.parse_cpus(str(cpus[0])) == [cpus[0]]
    assert cli.parse_cpus(f"{cpus[0]}-{cpus[-1]}") == cpus
    with pytest.raises(cli.UsageError):
        cli.parse_cpus("a-b")
