"""start.py's command line: runtime names like the seed, errors, CPU lists."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from supervisor import cli
from testbed.node import NodeProcess
from testbed.wait import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def _typo_config(tmp_path: "os.PathLike[str]") -> str:
    cfg = os.path.join(tmp_path, "config.json")
    with open(cfg, "w") as f:
        json.dump({"mqtt_prot": 1884, "realm": "realm"}, f)
    return cfg


WARNING = "unknown key 'mqtt_prot' ignored; did you mean 'mqtt_port'?"


def test_config_warnings_before_an_error_use_the_seed_format(tmp_path: "os.PathLike[str]") -> None:
    """A config warning is logged while the settings are read, before the logging set-up: it still
    comes out as a seed line `[time] [cfg:WRN] ...`, not as Python's bare last-resort line."""
    p = subprocess.run([sys.executable, "start.py", "-n", "x", "-c", _typo_config(tmp_path), "-r", "nope"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.splitlines()
    (warn,) = [ln for ln in lines if WARNING in ln]
    assert re.match(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[cfg:WRN\] ", warn), warn
    assert any(ln.startswith("start.py: error: unknown runtime 'nope'") for ln in lines), p.stderr


def test_config_warnings_reach_the_node_log(tmp_path: "os.PathLike[str]", broker: Any) -> None:
    """A node that starts: the held warning goes to stderr and to its log file, in the seed format."""
    logdir = os.path.join(tmp_path, "logs")
    with NodeProcess(broker.port, name="warnnode", reg_timeout=0.3,
                     extra_args=["-c", _typo_config(tmp_path), "--logdir", logdir]) as n:
        wait_until(lambda: WARNING in n.output(), timeout=20)
        assert any("] [cfg:WRN] " in ln for ln in n.output().splitlines() if WARNING in ln), n.output()
        assert n.stop() == 0
    with open(os.path.join(logdir, "warnnode.log")) as f:
        logged = [ln for ln in f.read().splitlines() if WARNING in ln]
    assert len(logged) == 1 and "] [cfg:WRN] " in logged[0], logged
