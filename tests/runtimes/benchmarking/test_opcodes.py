"""The opcode counter: instrumented wasmtime counts equal the pywasm reference exactly."""
from __future__ import annotations

import pytest

from benchmarking import harness
from benchmarking.opcodes.instrument import instrument, static_histogram
from benchmarking.opcodes.child import child_target, parse_child_result
from benchmarking.opcodes.reference import reference_counts
from benchmarking.opcodes.wasm import WasmError


def count_in_child(path: str, args: list[str]):  # type: ignore[no-untyped-def]
    """Instrument here (pure Python), run in a forked child as the runtime does."""
    with open(path, "rb") as f:
        ins = instrument(f.read())
    r = harness.run(child_target(ins, ["module.wasm"] + args), limit=120)
    assert not r.killed and r.exit_code == 0, r.describe()
    return parse_child_result(r.result)


# (module, argv): loops+branches, call_indirect/br_table/recursion, memory+bulk memory, SIMD,
# and a C program (malloc, printf, function-pointer table, switch) with and without output
CASES = [("loops", []), ("tables", []), ("memory", []), ("simd", []), ("kernels", ["5"]), ("kernels", ["4", "quiet"])]


@pytest.mark.parametrize("name,args", CASES, ids=[f"{n}-{'-'.join(a) or 'noargs'}" for n, a in CASES])
def test_counts_equal_reference(wasm: dict[str, str], name: str, args: list[str]) -> None:
    got = count_in_child(wasm[name], args)
    with open(wasm[name], "rb") as f:
        ref_code, ref = reference_counts(f.read(), args)
    assert got.exit_code == ref_code
    assert sum(ref) > 1000  # the module really ran
    diff = {hex(i): (a, b) for i, (a, b) in enumerate(zip(got.opcodes, ref)) if a != b}
    assert diff == {}, f"opcode bins differing (ours, reference): {diff}"


def test_counting_rules(wasm: dict[str, str]) -> None:
    mem = count_in_child(wasm["memory"], [])
    simd = count_in_child(wasm["simd"], [])
    assert mem.opcodes[0xFC] == 2 + 100  # memory.fill + memory.copy + one i64.trunc_sat per iteration
    assert simd.opcodes[0xFD] > 0 and simd.opcodes[0xFC] == 0
    for r in (mem, simd):
        assert r.opcodes[0x0B] == 0 and r.opcodes[0x05] == 0  # end / else are never counted
        assert r.opcodes[0x03] == 1  # one loop entered once, however many iterations


def test_loop_iteration_counts(wasm: dict[str, str]) -> None:
    r = count_in_child(wasm["loops"], [])
    # $work(40) then $work(7): outer loop n+1 passes, inner max(1, i) passes per outer pass
    assert r.exit_code == 3
    assert r.loops == [41 + 8, (1 + sum(range(1, 40))) + (1 + sum(range(1, 7)))]


def test_instrumented_binary_validates(wasm: dict[str, str]) -> None:
    import wasmtime

    for name in ("loops", "tables", "memory", "simd", "kernels"):
        with open(wasm[name], "rb") as f:
            data = f.read()
        ins = instrument(data)
        wasmtime.Module.validate(wasmtime.Engine(), ins.binary)
        assert ins.counters > 0
        # every counted instruction is in exactly one segment histogram
        total = [0] * 256
        for h in ins.hists:
            for op, n in h.items():
                total[op] += n
        assert total == static_histogram(data)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(WasmError, match="not a WebAssembly binary"):
        instrument(b"\x7fELF....")
    import wasmtime

    atomic = wasmtime.wat2wasm('(module (memory 1 1 shared) (func (drop (i32.atomic.load (i32.const 0)))))')
    with pytest.raises(WasmError, match=r"unsupported opcode 0xFE at offset \d+"):
        instrument(atomic)
    with pytest.raises(WasmError, match="longer than the file"):
        instrument(wasmtime.wat2wasm("(module (func))")[:-3])
