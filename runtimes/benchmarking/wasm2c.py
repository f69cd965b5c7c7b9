"""wasm2c-a: WebAssembly to C with Debian `wabt`'s wasm2c, compiled with gcc -O2 and linked with
our WASI layer (wasm2c/wasi.c) into a native executable. (Being written: not available yet.)"""
from __future__ import annotations


def available() -> tuple[bool, str]:
    return False, "the wasm2c WASI layer is not finished in this version"


def build(path: str, out: str) -> None:
    raise NotImplementedError("wasm2c-a is not available in this version")
