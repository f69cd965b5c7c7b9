"""Instrument a WebAssembly module to count executed instructions exactly.

Each function body is cut into *segments*: straight-line runs of instructions that are always
executed together, from their first instruction to their last, unless a trap intervenes. A new
segment starts at a function's entry, at the start of a loop body (the target of a branch to
the loop), at the start of each arm of an `if`, after each `end`, and after every instruction
that may not fall through to the next one: `br`, `br_if`, `br_table`, `return`, `unreachable`,
the tail calls, and the calls (`call`, `call_indirect`), because a callee may never return
(WASI `proc_exit`). Every non-empty segment gets one mutable i64 global, incremented at its
start (`global.get; i64.const 1; i64.add; global.set`) and exported as `<prefix><k>`, plus a
static opcode histogram. After a run, `sum(count[k] * hist[k])` is the dynamic histogram.

Counting rules (documented in docs/benchmarking.md):
- one count per executed instruction, in the bin of its first byte;
- prefixed instructions (0xFC: saturating truncation, bulk memory, table ops; 0xFD: SIMD)
  count once each in the bin of their prefix byte, 0xFC or 0xFD;
- `end` (0x0B) and `else` (0x05) are delimiters of structured instructions, not executed
  instructions: never counted (their bins stay 0);
- `loop` counts once per entry, not per iteration (a branch to a loop goes to its body);
- exact for runs that end normally or through `proc_exit`; on a trap the segment holding the
  trapping instruction is counted whole;
- the counter instructions themselves are not counted.

The same segments give the `instrumented` profile: the count of the segment that starts each
loop body is the number of iterations of that loop (loops in code order).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from benchmarking.opcodes.wasm import (
    OP_BLOCK, OP_BR, OP_BR_IF, OP_BR_TABLE, OP_CALL, OP_CALL_INDIRECT, OP_ELSE, OP_END, OP_IF, OP_LOOP, OP_RETURN,
    OP_RETURN_CALL, OP_RETURN_CALL_INDIRECT, OP_UNREACHABLE, SEC_CODE, SEC_CUSTOM, SEC_EXPORT, SEC_GLOBAL, SECTION_ORDER,
    Module, Reader, WasmError, count_globals, iter_instructions, parse, uleb,
)

DEFAULT_PREFIX = "__sl_c"
U64 = (1 << 64) - 1
U32 = (1 << 32) - 1

# after these the next instruction starts a new segment (the instruction itself ends the current one)
_ENDS_SEGMENT = {OP_BR, OP_BR_IF, OP_BR_TABLE, OP_RETURN, OP_UNREACHABLE, OP_CALL, OP_CALL_INDIRECT, OP_RETURN_CALL, OP_RETURN_CALL_INDIRECT, OP_LOOP, OP_IF}
_NOT_COUNTED = {OP_END, OP_ELSE}


@dataclass
class Instrumented:
    """An instrumented binary and what is needed to turn its counters into histograms."""
    binary: bytes
    prefix: str
    hists: list[dict[int, int]] = field(default_factory=list)  # per counter: opcode byte -> static count
    loops: list[int] = field(default_factory=list)  # per loop (code order): its body's counter

    @property
    def counters(self) -> int:
        return len(self.hists)

    def export_names(self) -> list[str]:
        return [f"{self.prefix}{k}" for k in range(self.counters)]

    def opcode_histogram(self, counts: list[int]) -> list[int]:
        """256 dynamic counts by opcode byte from the per-segment counter values."""
        if len(counts) != self.counters:
            raise ValueError(f"expected {self.counters} counter values, got {len(counts)}")
        hist = [0] * 256
        for c, h in zip(counts, self.hists):
            c &= U64
            if c:
                for op, n in h.items():
                    hist[op] += c * n
        return [v & U64 for v in hist]

    def loop_counts(self, counts: list[int]) -> list[int]:
        """Iterations per loop (code order), saturated to u32."""
        return [min(counts[k] & U64, U32) for k in self.loops]


def _increment(g: int) -> bytes:
    gi = uleb(g)
    return b"\x23" + gi + b"\x42\x01\x7c\x24" + gi


class _BodyRewriter:
    """Rewrites one function body, allocating counters from the shared list."""

    def __init__(self, out: Instrumented, global_base: int) -> None:
        self.out = out
        self.base = global_base

    def rewrite(self, data: bytes, start: int, end: int) -> bytes:
        chunks: list[bytes] = []
        seg_slot = len(chunks)
        chunks.append(b"")
        hist: Counter[int] = Counter()
        force = False  # a loop head gets a counter even when its body is empty
        loop_head = False
        depth = 0

        def close(next_is_loop_head: bool = False) -> None:
            nonlocal seg_slot, hist, force, loop_head
            if hist or force:
                k = len(self.out.hists)
                self.out.hists.append(dict(hist))
                chunks[seg_slot] = _increment(self.base + k)
                if loop_head:
                    self.out.loops.append(k)
            seg_slot = len(chunks)
            chunks.append(b"")
            hist = Counter()
            force = loop_head = next_is_loop_head

        last = start
        for op, a, b in iter_instructions(data, start, end):
            chunks.append(data[a:b])
            last = b
            if op not in _NOT_COUNTED:
                hist[op] += 1
            if op in (OP_BLOCK, OP_LOOP, OP_IF):
                depth += 1
            if op == OP_END:
                depth -= 1
                if depth < 0:  # the function's own end: close without opening a new segment
                    break
                close()
            elif op == OP_ELSE:
                close()
            elif op in _ENDS_SEGMENT:
                close(next_is_loop_head=(op == OP_LOOP))
        else:
            raise WasmError(f"function body at offset {start} has no final end")
        if last != end:
            raise WasmError(f"function body at offset {start}: {end - last} bytes after the final end")
        # the segment ending at the function's end
        end_chunk = chunks.pop()
        close()
        chunks.append(end_chunk)
        return b"".join(chunks)


def _vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def _section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + uleb(len(payload)) + payload


def instrument(data: bytes, prefix: str = DEFAULT_PREFIX) -> Instrumented:
    """Return the counting version of the module `data` (raises WasmError on bad input)."""
    mod: Module = parse(data)
    out = Instrumented(binary=b"", prefix=prefix)
    base = count_globals(mod)
    rw = _BodyRewriter(out, base)
    bodies: list[bytes] = []
    for body in mod.bodies:
        code = rw.rewrite(data, body.offset, body.offset + len(body.code))
        b = body.locals + code
        bodies.append(uleb(len(b)) + b)

    new_globals = [b"\x7e\x01\x42\x00\x0b"] * out.counters
    names = out.export_names()
    new_exports = [uleb(len(n)) + n.encode() + b"\x03" + uleb(base + k) for k, n in enumerate(names)]

    def extend(sid: int, payload: bytes | None, extra: list[bytes]) -> bytes:
        if payload is None:
            return _vec(extra)
        r = Reader(payload)
        n = r.u()
        return uleb(n + len(extra)) + payload[r.pos:] + b"".join(extra)

    exp = mod.section(SEC_EXPORT)
    if exp is not None:
        r = Reader(exp.payload)
        for _ in range(r.u()):
            name = r.name()
            r.byte()
            r.u()
            if name.startswith(prefix):
                raise WasmError(f"the module already exports {name!r}, which collides with the counter prefix {prefix!r}")

    glob = mod.section(SEC_GLOBAL)
    replaced = {
        SEC_GLOBAL: extend(SEC_GLOBAL, glob.payload if glob else None, new_globals),
        SEC_EXPORT: extend(SEC_EXPORT, exp.payload if exp else None, new_exports),
        SEC_CODE: _vec(bodies) if mod.bodies else None,
    }
    parts: list[bytes] = [data[:8]]
    present = {s.id for s in mod.sections}
    emitted: set[int] = set()

    def emit_missing_before(sid: int) -> None:
        # a global/export section the module lacked goes at its place in the section order
        for want in (SEC_GLOBAL, SEC_EXPORT):
            if want not in present and want not in emitted and SECTION_ORDER.index(want) < SECTION_ORDER.index(sid):
                parts.append(_section(want, replaced[want] or b""))
                emitted.add(want)

    for s in mod.sections:
        if s.id == SEC_CUSTOM:
            if s.name.startswith(".debug"):
                continue  # DWARF offsets would be stale after rewriting
            parts.append(_section(0, s.payload))
            continue
        emit_missing_before(s.id)
        if s.id in replaced and replaced[s.id] is not None:
            parts.append(_section(s.id, replaced[s.id] or b""))
        else:
            parts.append(_section(s.id, s.payload))
        emitted.add(s.id)
    for want in (SEC_GLOBAL, SEC_EXPORT):
        if want not in emitted:
            parts.append(_section(want, replaced[want] or b""))
            emitted.add(want)
    out.binary = b"".join(parts)
    return out


def static_histogram(data: bytes) -> list[int]:
    """Static count of instructions by opcode byte (same rules as the dynamic one), for tests and reports."""
    mod = parse(data)
    hist = [0] * 256
    for body in mod.bodies:
        for op, _a, _b in iter_instructions(data, body.offset, body.offset + len(body.code)):
            if op not in _NOT_COUNTED:
                hist[op] += 1
    return hist
