"""The conformance suite (benchmarking/engines/conformance.py): every installed engine runs every
case and must match wasmtime-j's stdout, files and exit status; the comparison itself is checked
on outcomes that differ in each way."""
from __future__ import annotations

import os
import subprocess
import pytest

from benchmarking.engines import conformance
from benchmarking.engines import launch as engines


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    p = subprocess.run(["make", "-s", "-C", os.path.join(engines.PROJECT_ROOT, "modules")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_outcomes_differ_by_status_stdout_or_files() -> None:
    ref = conformance.Outcome("a\n", "exit 0", {"f": "x"})
    assert conformance.Outcome("a\n", "exit 0", {"f": "x"}).differs(ref) is None
    assert "status 'trap'" in str(conformance.Outcome("a\n", "trap", {"f": "x"}).differs(ref))
    assert "stdout 'b\\n'" in str(conformance.Outcome("b\n", "exit 0", {"f": "x"}).differs(ref))
    assert "files" in str(conformance.Outcome("a\n", "exit 0", {"f": "y"}).differs(ref))


def test_reference_outcomes_are_what_the_modules_print() -> None:
    ref = conformance.reference_outcomes()
    assert ref["hello"].stdout == "Hello, World!\n" and ref["hello"].status == "exit 0"
    assert ref["args-env-exit7"].status == "exit 7" and "env X=a=b" in ref["args-env-exit7"].stdout
    assert ref["stdin"].stdout == "line one\nline two\n\u00e9t\u00e9\n"
    assert ref["dir-write"].files == {"out.txt": "written"}
    assert ref["trap"].status == "trap" and ref["trap"].stdout == "about to trap\n"
    assert ref["no-escape"].stdout == "dotdot: refused\nsymlink: refused\ncreate outside: refused\n"
    assert "moved.txt" in ref["files-and-dirs"].stdout and ref["files-and-dirs"].status == "exit 0"
    assert "random ok" in ref["clock-random-argv"].stdout and "arg 3 [b c]" in ref["clock-random-argv"].stdout
    assert ref["kernel-calls"].stdout == "fib 18: 2584\n"


def test_every_installed_engine_is_conformant() -> None:
    # AOT artifacts go to the node's cache: keyed by module hash, version and target, never stale
    verdicts = conformance.check(store=False)
    assert len(verdicts) >= 15
    failed = {n: v["why"] for n, v in verdicts.items() if not v["ok"]}
    assert not failed, failed
    # what the suite found about engines that are not sandboxes is kept, not hidden
    assert "no-escape" in verdicts["wasmer-j-cl"]["not_a_sandbox"]
    assert verdicts["wasmtime-j"]["not_a_sandbox"] == {}
