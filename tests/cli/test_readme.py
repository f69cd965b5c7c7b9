"""The README's "Using it" commands run as written on a 2-CPU machine, in order (issue #27: its
`start.py -n node1 -r linux benchmarking -g 2 3` named CPUs a 2-CPU machine lacks, and the node name
the line before had started). Each `start.py` line must parse here (CPU sets included) under a name
no earlier line took; each `manage.py` line must name a script and parse (module scripts run for
real in tests/cli/test_help_examples.py)."""
from __future__ import annotations

import os
import re
import shlex

import pytest

import supervisor.cli
from cli import SCRIPTS, _register

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def using_it() -> list[list[str]]:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    block = re.search(r"^## Using it\n```sh\n(.*?)^```", text, re.M | re.S)
    assert block, "README.md has no ```sh block under ## Using it"
    return [shlex.split(ln.split(" #")[0]) for ln in block.group(1).splitlines() if ln.strip()]


def test_start_lines_fit_two_cpus_and_distinct_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # what a 2-CPU machine allows
    names = []
    for words in using_it():
        if words[:2] == ["python", "start.py"]:
            s = supervisor.cli.build_settings([*words[2:], "--no-state"])
            assert s is not None
            assert s.name not in names, f"{' '.join(words)}: node {s.name} is already running (an earlier line)"
            names.append(s.name)
    assert names


def test_manage_lines_name_scripts() -> None:
    _register()
    for words in using_it():
        if words[:2] == ["python", "manage.py"] and words[2] not in ("-h", "--help"):
            assert words[2] in SCRIPTS, words
