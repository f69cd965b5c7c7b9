"""Our WASI layer for wasm3 (benchmarking/engines/wasi/layer.py), its logic on a bytearray memory
(no wasm3 involved): confinement of paths, errno values, the fd calls; and on real modules through
the engine `wasm3-i` (the conformance suite runs every case on it too)."""
from __future__ import annotations

import os
import struct
from typing import Any

import pytest

from benchmarking.engines import launch as engines
from benchmarking.engines.wasi.abi import E, O_CREAT, RIGHT_FD_READ, RIGHT_FD_WRITE, WasiError
from benchmarking.engines.wasi.layer import Wasi
from benchmarking.engines.wasi.wasm3 import strip_custom_sections


@pytest.fixture
def tree(tmp_path: Any) -> Any:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f.txt").write_text("inside")
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink("sub/f.txt", root / "rel-ok")
    os.symlink("../outside.txt", root / "rel-out")
    os.symlink(str(tmp_path / "outside.txt"), root / "abs")
    os.symlink("loop", root / "loop")
    return root


def layer(root: Any, mem: bytearray) -> Wasi:
    return Wasi(["prog", "a"], {"K": "V"}, [str(root)], memory=lambda: mem)


def put(mem: bytearray, ptr: int, text: str) -> tuple[int, int]:
    data = text.encode()
    mem[ptr:ptr + len(data)] = data
    return ptr, len(data)


def test_paths_stay_inside_the_preopened_dir(tree: Any) -> None:
    w = layer(tree, bytearray(4096))
    try:
        for path, code in [("../outside.txt", "ENOTCAPABLE"), ("sub/../../outside.txt", "ENOTCAPABLE"),
                           ("/etc/passwd", "ENOTCAPABLE"), ("rel-out", "ENOTCAPABLE"), ("abs", "ENOTCAPABLE"),
                           ("loop", "ELOOP"), ("sub/f.txt/x", "ENOTDIR"), ("nope/x", "ENOENT")]:
            with pytest.raises(WasiError) as e:
                fd, _ = w.resolve(3, path, follow=True)
                os.close(fd)
            assert e.value.code == E[code], path
        fd, name = w.resolve(3, "rel-ok", follow=True)
        assert name == "f.txt" and os.path.samefile(f"/proc/self/fd/{fd}", tree / "sub")
        os.close(fd)
        fd, name = w.resolve(3, "sub/./../sub/f.txt", follow=False)
        assert name == "f.txt"
        os.close(fd)
        # not following the last symlink: it is the link itself (lstat), wherever it points
        fd, name = w.resolve(3, "abs", follow=False)
        assert name == "abs"
        os.close(fd)
    finally:
        w.close()


def test_open_write_seek_read_and_errno_values(tree: Any) -> None:
    mem = bytearray(4096)
    w = layer(tree, mem)
    try:
        p, n = put(mem, 100, "sub/new.txt")
        assert w.path_open(3, 0, p, n, O_CREAT, RIGHT_FD_READ | RIGHT_FD_WRITE, 0, 0, 200) == 0
        fd = struct.unpack_from("<I", mem, 200)[0]
        assert fd == 4
        dp, dn = put(mem, 300, "hello wasi")
        struct.pack_into("<II", mem, 400, dp, dn)
        assert w.fd_write(fd, 400, 1, 408) == 0 and struct.unpack_from("<I", mem, 408)[0] == dn
        assert w.fd_seek(fd, (1 << 64) - 4, 2, 416) == 0  # -4 from the end, as an unsigned i64
        assert struct.unpack_from("<Q", mem, 416)[0] == dn - 4
        struct.pack_into("<II", mem, 400, 500, 16)
        assert w.fd_read(fd, 400, 1, 408) == 0 and bytes(mem[500:504]) == b"wasi"
        assert (tree / "sub" / "new.txt").read_text() == "hello wasi"
        assert w.fd_close(fd) == 0 and w.fd_close(fd) == E["EBADF"]
        p, n = put(mem, 100, "missing.txt")
        assert w.path_open(3, 0, p, n, 0, RIGHT_FD_READ, 0, 0, 200) == E["ENOENT"]
        p, n = put(mem, 100, "../outside.txt")
        assert w.path_open(3, 0, p, n, 0, RIGHT_FD_READ, 0, 0, 200) == E["ENOTCAPABLE"]
        p, n = put(mem, 100, "sub")
        assert w.path_unlink_file(3, p, n) == E["EISDIR"] and w.path_remove_directory(3, p, n) == E["ENOTEMPTY"]
        assert w.fd_prestat_get(3, 600) == 0 and struct.unpack_from("<BxxxI", mem, 600) == (0, len(str(tree)))
        assert w.fd_prestat_get(4, 600) == E["EBADF"]
        assert w.args_sizes_get(700, 704) == 0 and struct.unpack_from("<II", mem, 700) == (2, len("prog\0a\0"))
    finally:
        w.close()


def test_strip_custom_sections_keeps_the_rest() -> None:
    name = b"\x04name" + b"\x01\x02\x00\x00"
    typesec = b"\x01\x04\x01\x60\x00\x00"
    module = b"\0asm\x01\0\0\0" + typesec + b"\x00" + bytes([len(name)]) + name
    assert strip_custom_sections(module) == b"\0asm\x01\0\0\0" + typesec
    with pytest.raises(ValueError):
        strip_custom_sections(b"not wasm")


def test_wasm3_engine_runs_a_module_with_its_dirs(tmp_path: Any) -> None:
    mod = os.path.join(engines.PROJECT_ROOT, "build", "modules", "readfile.wasm")
    (tmp_path / "in.txt").write_text("through wasm3\n")
    out = tmp_path / "out"
    r = engines.run_once(engines.prepare("wasm3-i", engines.Invocation(mod, ["readfile", f"{tmp_path}/in.txt"],
                                                                        dirs=[str(tmp_path)])),
                         limit=60, stdout=str(out))
    assert r.exit_code == 0 and out.read_text() == "through wasm3\n"
    assert r.phases and set(r.phases) == {"compile_ns", "instantiate_ns", "execute_ns"}
