"""The one engine name table (benchmarking/engines/catalog.py) and its readers: the adapters, the AOT
cache, the engine gate, `manage.py engines` and cluster/aot.py."""
from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarking.engines import aot, catalog, gate
from benchmarking.engines.families import ADAPTERS, adapter
from cli import engines as engines_cli
from cluster import aot as cluster_aot


def test_every_engine_has_one_adapter_and_every_aot_engine_a_compile() -> None:
    assert set(ADAPTERS) == set(catalog.FAMILIES)
    for name, e in catalog.ENGINES.items():
        assert adapter(name).family == e.family
        assert e.kind in catalog.KINDS
    assert sorted(aot.EXT) == sorted(catalog.aot_names()) == sorted(aot.LAYOUT_DIR)
    assert set(catalog.aot_names()) == {"wasmtime-a", "wasmtime-a-b", "wasmtime-cli-a", "wasmer-a-cl", "wasmer-a-sp",
                                        "wasmer-a-ll", "wasm2c-a"}


@pytest.mark.parametrize("word,family", [
    ("wasmtime", "wasmtime"), ("wasmtime-a", "wasmtime"), ("WASMTIME", "wasmtime"), ("wasmtime-cli-a", "wasmtime-cli"),
    ("wasmer", "wasmer"), ("wasmer-a-ll", "wasmer"), ("iwasm", "wamr"), ("wamrc", "wamr"), ("iwasm-a", "wamr"),
    ("wasm3", "wasm3"), ("pywasm", "pywasm"), ("v8-b", "v8"), ("native", "native"), ("unknown-x", "unknown-x")])
def test_cluster_aot_names_engines_by_catalog_family(word: str, family: str) -> None:
    assert catalog.family(word) == family
    assert cluster_aot.canonical(word) == family


def test_the_gate_reads_the_default_on_column() -> None:
    on = {n for n, e in catalog.ENGINES.items() if e.on}
    assert on == {"wasmtime-j", "wasmtime-a", "wasmtime-b", "wasmtime-a-b", "wasmtime-i", "wasm3-i"}
    for n, e in catalog.ENGINES.items():
        assert gate.opt_in(n) is (not e.on), n
        if e.on:  # on by default only for sandboxes that run the module in-process
            assert e.sandboxed and e.kind not in ("native", "cli-external"), n
    assert gate.opt_in("wasmer") and not gate.opt_in("wasmtime")  # aliases
    assert not gate.opt_in("no-such-engine")  # left to launch.availability, which refuses it


def test_manage_engines_json_shows_the_catalog(capsys: Any) -> None:
    assert engines_cli.main(["--json", "--cfg", "/dev/null"]) == 1  # /dev/null is no config: said so
    assert "--cfg /dev/null" in capsys.readouterr().err
    assert engines_cli.main(["--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert list(table) == catalog.all_names()
    for name, row in table.items():
        e = catalog.ENGINES[name]
        assert (row["family"], row["kind"], row["on_by_default"], row["aliases"]) == (e.family, e.kind, e.on, list(e.aliases))
