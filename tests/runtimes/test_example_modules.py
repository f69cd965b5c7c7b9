"""The example modules are correct on wasm32 (`long` is 32 bits there): spin.wasm's count and sum
are 64-bit (it printed `spun 5000 (2539587328)` at once: 5000 million overflowed the loop bound)."""
from __future__ import annotations

import os
from pathlib import Path

import wasmtime

ROOT = Path(__file__).resolve().parents[2]


def run(name: str, argv: list[str], tmp_path: Path) -> str:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    wasi = wasmtime.WasiConfig()
    wasi.argv = [name, *argv]
    out = tmp_path / "stdout"
    wasi.stdout_file = str(out)
    store.set_wasi(wasi)
    module = wasmtime.Module.from_file(engine, os.path.join(ROOT, "build", "modules", f"{name}.wasm"))
    try:
        linker.instantiate(store, module).exports(store)["_start"](store)  # type: ignore[operator]
    except wasmtime.ExitTrap as e:
        assert e.code == 0
    return out.read_text()


def test_spin_sums_past_32_bits(tmp_path: Path) -> None:
    n = 5 * 1_000_000  # sum of 0..n-1 = 12,499,997,500,000: past 2^32 (the old code printed it mod 2^32)
    assert run("spin", ["5"], tmp_path) == f"spun 5 ({n * (n - 1) // 2})\n"
