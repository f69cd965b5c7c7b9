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
