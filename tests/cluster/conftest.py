"""Fixtures of the cluster tests: one real sshd per module, a manifest of two devices that point
at it (dev1, dev2) and one that nobody answers for (dev3), and a runner for the scripts."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from common.manifest import COLUMNS
from tests.cluster.sshd import Sshd

ROWS = [
    ("dev1", "VM", "x86", "x86-64", "x86_64-unknown-linux-gnu", "x86_64", "no", "cg1", "4G", "1G", "ssd", "x", ""),
    ("dev2", "VM", "x86", "x86-64", "x86_64-unknown-linux-gnu", "x86_64", "yes", "cg2", "4G", "1G", "ssd", "x", "x"),
    ("dev3", "Pi", "A72", "cortex-a72", "aarch64-unknown-linux-gnu", "aarch64", "no", "cg3", "4G", "1G", "sd", "x", ""),
]


def write_manifest(path: Path) -> str:
    lines = ["\t".join([*COLUMNS, "wasmtime", "wasmer"])] + ["\t".join(r) for r in ROWS]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    s = Sshd(devices=("dev1", "dev2"), unreachable=("dev3",))
    try:
        s.start()
        yield s
    finally:
        s.close()


@dataclass
class Cluster:
    sshd: Sshd
    manifest: str
    root: Path
    capsys: pytest.CaptureFixture[str]

    def run(self, script: str, *args: str) -> tuple[int, str, str]:
        """`manage.py SCRIPT -m MANIFEST -F SSH_CONFIG ARGS...` in this process; (status, stdout, stderr)."""
        mod = importlib.import_module(f"cli.{script}")
        self.capsys.readouterr()
        rc = mod.main(["-m", self.manifest, "-F", self.sshd.client_config, *args])
        out, err = self.capsys.readouterr()
        return rc, out, err


@pytest.fixture
def cluster(sshd: Sshd, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cluster:
    return Cluster(sshd, write_manifest(tmp_path / "manifest.tsv"), tmp_path, capsys)
