"""The one Python 3.10 finder (common/python310.py): the linux/min/wasmer runtime and the wasmer
benchmark engines find the same interpreter, on this machine's real candidates."""
from __future__ import annotations

import os

import pytest

from benchmarking.engines.adapters import wasmer as wasmer_adapter
from common import python310


def test_both_users_find_the_same_python310() -> None:
    found, why = python310.find_wasmer_python()
    if found is None:
        pytest.skip(f"no Python 3.10 with wasmer here: {why}")
    assert found in python310.candidates()
    # the benchmark engines look without starting a process, and agree
    assert python310.find_with(("wasmer", "wasmer_compiler_cranelift")) == found
    assert wasmer_adapter.python310() == found
    site = python310.site_packages(found)
    assert os.path.isdir(os.path.join(site, "wasmer")) and site.endswith(os.path.join("lib", "python3.10", "site-packages"))


def test_a_package_no_candidate_has_finds_nothing() -> None:
    assert python310.find_with(("no_such_package_here",)) is None
    path, why = python310.find_wasmer_python("/nonexistent/python3.10")
    assert path is None and "/nonexistent/python3.10 does not exist" in why and "make env" in why
