"""The cached mount table of the benchmarking runtimes' file policy follows real mounts: a bind mount
and its unmount in a private mount namespace (`unshare -m`, root only) are seen at the next call."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from runtimes.benchmarking.mounttable import MountTable
from runtimes.files import mount_points

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_the_table_is_the_kernels_and_is_not_reread_without_a_change() -> None:
    t = MountTable()
    try:
        assert t.points() == mount_points()
        fd = t._fd
        assert t.points() == mount_points() and t._fd == fd  # no change: the same open table, not read again
    finally:
        t.close()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare for a real bind mount")
def test_a_bind_mount_and_its_unmount_are_seen_at_the_next_call(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    code = ("import subprocess, sys\n"
            "from runtimes.benchmarking.mounttable import MountTable\n"
            "t = MountTable(); target = sys.argv[2]\n"
            "before = target in t.points()\n"
            "subprocess.run(['mount', '--bind', sys.argv[1], target], check=True)\n"
            "during = target in t.points()\n"
            "subprocess.run(['umount', target], check=True)\n"
            "after = target in t.points()\n"
            "print(before, during, after)\n")
    r = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --make-rprivate / && exec {sys.executable} -c \"$0\" \"$1\" \"$2\"",
                        code, str(tmp_path / "a"), str(tmp_path / "b")],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True", "False"], r.stdout
