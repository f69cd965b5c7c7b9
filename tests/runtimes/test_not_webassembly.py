"""A file named .wasm that is not WebAssembly: one clear reason instead of the WAT parser's
"expected `(`" (Engine.load, every engine)."""
from __future__ import annotations

from pathlib import Path

import pytest

from runtimes.engines import LoadError, open_engine
from runtimes.engines.api import not_webassembly


def test_headers() -> None:
    assert not_webassembly(b"\0asm\x01\0\0\0") is None
    assert not_webassembly(b"\x7fELF....") is None  # a precompiled artifact
    assert not_webassembly(b"  (module)") is None and not_webassembly(b";; text\n(module)") is None
    assert not_webassembly(b"my notes\n") == "not a WebAssembly module (no \\0asm header)"
    assert not_webassembly(b"") == "not a WebAssembly module (no \\0asm header)"


def test_wasmtime_load_says_so(tmp_path: Path) -> None:
    f = tmp_path / "notes.wasm"
    f.write_text("these are my notes\n")
    with pytest.raises(LoadError, match=r"notes.wasm: not a WebAssembly module \(no \\0asm header\)"):
        open_engine("wasmtime").load(str(f))


@pytest.mark.parametrize("name,text,why", [
    ("README.md", "# a readme\n", r"not a WebAssembly module \(no \\0asm header\)"),
    ("script.lisp", "(print 1)\n", r"not a WebAssembly module \(no \\0asm header, and not valid WAT: "),
    ("bad.wat", "(module (func $f (unknown)))\n", r"not a WebAssembly module \(no \\0asm header, and not valid WAT: "),
])
def test_any_file_name_that_is_no_module_says_so(tmp_path: Path, name: str, text: str, why: str) -> None:
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(LoadError, match=why):
        open_engine("wasmtime").load(str(f))
    (tmp_path / "ok.wat").write_text("(module)\n")
    open_engine("wasmtime").load(str(tmp_path / "ok.wat"))  # valid text still loads


def test_a_broken_binary_keeps_the_engine_reason(tmp_path: Path) -> None:
    f = tmp_path / "broken.wasm"
    f.write_bytes(b"\0asm\x01\0\0\0\x01\xff")
    with pytest.raises(LoadError) as e:
        open_engine("wasmtime").load(str(f))
    assert "not a WebAssembly module" not in str(e.value)
