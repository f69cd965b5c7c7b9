"""The node's file policy (runtimes/files.py): every path field of a create, through the module roots.

Pure path logic on real files in tmp_path; the bind-mount case mounts for real in a private mount
namespace (`unshare -m`, root only)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from common.preopen import preopen_pair
from runtimes.files import ModuleFileError, ModuleFiles


@pytest.fixture
def tree(tmp_path: Any) -> dict[str, Any]:
    root, other = tmp_path / "root", tmp_path / "other"
    (root / "wasm" / "suite" / "data").mkdir(parents=True)
    other.mkdir()
    (root / "wasm" / "suite" / "m.wasm").write_bytes(b"\0asm")
    (root / "prog").write_text("#!/bin/sh\n")
    (root / "prog").chmod(0o755)
    (root / "plain.txt").write_text("x")
    (other / "secret").mkdir()
    (other / "out.txt").write_text("x")
    os.symlink(other / "secret", root / "dirlink")
    os.symlink(other / "out.txt", root / "outlink.txt")
    return {"tmp": tmp_path, "root": root, "other": other, "files": ModuleFiles([str(root)])}


def test_dirs_resolve_inside_the_roots_and_relative_ones_are_preopened_as_dot(tree: dict[str, Any]) -> None:
    f, root = tree["files"], tree["root"]
    # the original's benchmark creates: dirs ["."] -> the root, seen by the module as "."
    assert f.preopens(["."]) == [f"{root}::."]
    assert f.preopens(["wasm/suite/data"]) == [f"{root}/wasm/suite/data::."]
    assert f.preopens([str(root / "wasm")]) == [f"{root}/wasm"]  # absolute: at its own path
    assert f.preopens([f"wasm::/data"]) == [f"{root}/wasm::/data"]
    assert preopen_pair(f"{root}::.") == (str(root), ".") and preopen_pair("/a") == ("/a", "/a")
    for bad in ("..", "../other", str(tree["other"]), "dirlink", "/", "wasm/../../other", "nope"):
        with pytest.raises(ModuleFileError, match="args.dirs entry"):
            f.preopens([bad])
    with pytest.raises(ModuleFileError, match="preopened as '.'"):
        f.preopens([".", "wasm"])
    with pytest.raises(ModuleFileError, match="refused"):
        f.preopens([f"{tree['other']}::/x"])


def test_every_other_path_field_has_its_own_check_and_message(tree: dict[str, Any]) -> None:
    f, root, other = tree["files"], tree["root"], tree["other"]
    assert f.resolve("wasm/suite/m.wasm") == str(root / "wasm" / "suite" / "m.wasm")
    assert f.resolve_dir("wasm/suite/data", "args.dirmode") == str(root / "wasm" / "suite" / "data")
    assert f.resolve_file("plain.txt", "args.scriptmode") == str(root / "plain.txt")
    assert f.resolve_executable("prog", "the native executable") == str(root / "prog")
    assert f.resolve_output("new.txt", "args.stdout") == str(root / "new.txt")  # may be created
    assert f.resolve_output("plain.txt", "args.stdout") == str(root / "plain.txt")  # may be appended to
    cases = [(f.resolve_dir, str(other / "secret"), "refused"), (f.resolve_dir, "dirlink", "refused"),
             (f.resolve_file, "../other/out.txt", "refused"), (f.resolve_executable, "plain.txt", "not an executable"),
             (f.resolve_executable, "/bin/sh", "refused"), (f.resolve_output, "outlink.txt", "refused"),
             (f.resolve_output, str(other / "x.txt"), "refused"), (f.resolve_output, "nodir/x.txt", "cannot be written"),
             (f.resolve_output, "wasm", "cannot be written"), (f.resolve_output, "/etc/passwd", "refused")]
    for fn, name, why in cases:
        with pytest.raises(ModuleFileError, match=why) as e:
            fn(name, "args.field")
        assert "args.field" in str(e.value) and repr(name) in str(e.value)


def test_a_mount_point_below_a_root_is_refused(tree: dict[str, Any]) -> None:
    root = tree["root"]
    mounts = [str(root / "wasm" / "suite")]  # as if something were mounted there
    f = ModuleFiles([str(root)], mounts=lambda: mounts)
    with pytest.raises(ModuleFileError, match="mount point"):
        f.resolve("wasm/suite/m.wasm")
    assert f.resolve_file("plain.txt", "x") == str(root / "plain.txt")  # beside the mount: fine
    own = ModuleFiles([str(root), str(root / "wasm" / "suite")], mounts=lambda: mounts)
    assert own.resolve(str(root / "wasm" / "suite" / "m.wasm"))  # the mount as a root of its own is meant


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare for a real bind mount")
def test_a_real_bind_mount_inside_a_root_is_refused(tree: dict[str, Any]) -> None:
    root, other = tree["root"], tree["other"]
    (root / "bind").mkdir()
    code = ("import sys; from runtimes.files import ModuleFiles, ModuleFileError\n"
            f"f = ModuleFiles([{str(root)!r}])\n"
            "try:\n    f.resolve_dir('bind/secret', 'args.dirs entry'); print('RESOLVED')\n"
            "except ModuleFileError as e:\n    print('REFUSED', e)\n")
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        f"mount --make-rprivate / && mount --bind {other} {root / 'bind'} && exec {sys.executable} -c \"$0\"", code],
                       capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("REFUSED") and "mount point" in r.stdout, r.stdout


def test_the_working_directory_is_no_default_root(tmp_path: Any, monkeypatch: Any) -> None:
    # issue #25: the node's working directory holds config.json and its password file
    (tmp_path / "config.json").write_text('{"pwd": "secret.txt"}')
    monkeypatch.chdir(tmp_path)
    files = ModuleFiles()
    assert str(tmp_path) not in files.roots and all(r.endswith(os.path.join("build", "modules")) for r in files.roots)
    with pytest.raises(ModuleFileError, match="config.json"):
        files.resolve("config.json", "args.scriptmode")
    with pytest.raises(ModuleFileError):
        files.resolve(str(tmp_path / "config.json"))
