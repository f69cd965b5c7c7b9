"""A small WebAssembly binary reader: sections, function bodies and instruction boundaries.

Written for the opcode counter (`instrument.py`): it decodes exactly as much as is needed to
copy instructions verbatim and to know where control can go (structured control, branches,
calls). Supported: the MVP, sign extension, saturating truncation, bulk memory, reference
types, multi-value, multi-memory memargs, tail calls and SIMD (0xFD). Anything else
(threads 0xFE, exceptions, GC) raises `WasmError` naming the opcode and its byte offset.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MAGIC = b"\x00asm\x01\x00\x00\x00"

# section ids, and their required order in a module (custom sections may appear anywhere)
SEC_CUSTOM, SEC_TYPE, SEC_IMPORT, SEC_FUNC, SEC_TABLE, SEC_MEMORY, SEC_GLOBAL = 0, 1, 2, 3, 4, 5, 6
SEC_EXPORT, SEC_START, SEC_ELEM, SEC_CODE, SEC_DATA, SEC_DATACOUNT, SEC_TAG = 7, 8, 9, 10, 11, 12, 13
SECTION_ORDER = [SEC_TYPE, SEC_IMPORT, SEC_FUNC, SEC_TABLE, SEC_MEMORY, SEC_TAG, SEC_GLOBAL, SEC_EXPORT, SEC_START, SEC_ELEM, SEC_DATACOUNT, SEC_CODE, SEC_DATA]

# control opcodes
OP_UNREACHABLE, OP_NOP, OP_BLOCK, OP_LOOP, OP_IF, OP_ELSE, OP_END = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0B
OP_BR, OP_BR_IF, OP_BR_TABLE, OP_RETURN, OP_CALL, OP_CALL_INDIRECT = 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11
OP_RETURN_CALL, OP_RETURN_CALL_INDIRECT = 0x12, 0x13
PREFIX_MISC, PREFIX_SIMD = 0xFC, 0xFD


class WasmError(ValueError):
    """The binary is malformed or uses a feature this reader does not know; the text says where."""


class Reader:
    """A cursor over bytes with LEB128 decoding; errors name the absolute offset."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise WasmError(f"unexpected end of data at offset {self.pos}")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def bytes(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise WasmError(f"unexpected end of data at offset {self.pos} (need {n} bytes)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def _leb(self, bits: int) -> tuple[int, int, int]:
        """Raw LEB128: (value bits, bits read, last byte)."""
        result = shift = 0
        start = self.pos
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result, shift, b
            if shift > bits + 6:
                raise WasmError(f"LEB128 integer too long at offset {start}")

    def u(self, bits: int = 32) -> int:
        return self._leb(bits)[0]

    def s(self, bits: int = 32) -> int:
        result, shift, last = self._leb(bits)
        return result - (1 << shift) if last & 0x40 else result

    def name(self) -> str:
        n = self.u()
        raw = self.bytes(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise WasmError(f"name at offset {self.pos - n} is not UTF-8") from e

    @property
    def done(self) -> bool:
        return self.pos >= self.end


def uleb(n: int) -> bytes:
    """Unsigned LEB128 encoding."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sleb(n: int) -> bytes:
    """Signed LEB128 encoding."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


@dataclass
class Section:
    id: int
    offset: int  # of the section's payload in the original file
    payload: bytes
    name: str = ""  # custom sections only


@dataclass
class Body:
    """One function body: `locals` is the raw local-declaration prefix, `code` the instructions."""
    index: int  # function index (imports included)
    offset: int  # absolute offset of `code` in the file (for error messages)
    locals: bytes
    code: bytes


@dataclass
class Module:
    sections: list[Section]
    imported_funcs: int = 0
    imported_globals: int = 0
    bodies: list[Body] = field(default_factory=list)

    def section(self, sid: int) -> Section | None:
        for s in self.sections:
            if s.id == sid:
                return s
        return None


def _skip_limits(r: Reader) -> None:
    flags = r.byte()
    r.u(64)
    if flags & 1:
        r.u(64)


def _skip_valtype_init(r: Reader) -> None:
    """Skip a constant expression (global initialiser) up to its `end`."""
    for op, _start, _end in iter_instructions(r.data, r.pos, r.end):
        if op == OP_END:
            # a constant expression has no nested blocks, so the first end is its own
            r.pos = _end
            return
    raise WasmError(f"constant expression without end at offset {r.pos}")


def parse(data: bytes) -> Module:
    """Split a binary into sections and read imports (counts) and function bodies."""
    if data[:8] != MAGIC:
        if data[:4] == b"\x00asm":
            raise WasmError(f"unsupported WebAssembly version {data[4:8].hex()} (only version 1 modules; components are not modules)")
        raise WasmError("not a WebAssembly binary (missing \\0asm magic)")
    r = Reader(data, 8)
    mod = Module(sections=[])
    while not r.done:
        sid = r.byte()
        size = r.u()
        start = r.pos
        if start + size > len(data):
            raise WasmError(f"section {sid} at offset {start} is longer than the file")
        sec = Section(sid, start, data[start:start + size])
        if sid == SEC_CUSTOM:
            sec.name = Reader(data, start, start + size).name()
        mod.sections.append(sec)
        r.pos = start + size
    imp = mod.section(SEC_IMPORT)
    if imp is not None:
        ir = Reader(data, imp.offset, imp.offset + len(imp.payload))
        for _ in range(ir.u()):
            ir.name()
            ir.name()
            kind = ir.byte()
            if kind == 0:
                ir.u()
                mod.imported_funcs += 1
            elif kind == 1:
                ir.byte()
                _skip_limits(ir)
            elif kind == 2:
                _skip_limits(ir)
            elif kind == 3:
                ir.byte()
                ir.byte()
                mod.imported_globals += 1
            elif kind == 4:
                ir.byte()
                ir.u()
            else:
                raise WasmError(f"unknown import kind {kind} at offset {ir.pos - 1}")
    code = mod.section(SEC_CODE)
    if code is not None:
        cr = Reader(data, code.offset, code.offset + len(code.payload))
        for i in range(cr.u()):
            size = cr.u()
            end = cr.pos + size
            body_start = cr.pos
            for _ in range(cr.u()):
                cr.u()
                cr.byte()
            mod.bodies.append(Body(mod.imported_funcs + i, cr.pos, data[body_start:cr.pos], data[cr.pos:end]))
            cr.pos = end
    return mod


def count_globals(mod: Module) -> int:
    """Number of globals in the index space (imported + defined)."""
    g = mod.section(SEC_GLOBAL)
    n = 0 if g is None else Reader(g.payload).u()
    return mod.imported_globals + n


# -- instructions -------------------------------------------------------------------------------

# opcodes without immediates in the single-byte space (MVP numeric, parametric, sign extension)
_PLAIN = set(range(0x45, 0xC5)) | {OP_UNREACHABLE, OP_NOP, OP_ELSE, OP_END, OP_RETURN, 0x1A, 0x1B, 0xD1}
_ONE_U32 = {OP_BR, OP_BR_IF, OP_CALL, OP_RETURN_CALL, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0xD2}
_MEMARG = set(range(0x28, 0x3F))
_SIMD_MEMARG = set(range(0, 12)) | {92, 93}
_SIMD_LANE = set(range(21, 35))
_SIMD_MEMARG_LANE = set(range(84, 92))


def _memarg(r: Reader) -> None:
    align = r.u()
    if align & 0x40:  # multi-memory: a memory index follows
        r.u()
    r.u(64)


def _blocktype(r: Reader) -> None:
    b = r.data[r.pos] if r.pos < r.end else -1
    if b == 0x40 or b in (0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F):
        r.pos += 1
    else:
        r.s(33)


def skip_immediates(r: Reader, op: int, at: int) -> int:
    """Advance `r` past the immediates of opcode `op`; return the sub-opcode for prefixed ones (else -1)."""
    if op in _PLAIN:
        return -1
    if op in _ONE_U32:
        r.u()
    elif op in _MEMARG:
        _memarg(r)
    elif op in (OP_BLOCK, OP_LOOP, OP_IF):
        _blocktype(r)
    elif op == OP_BR_TABLE:
        for _ in range(r.u() + 1):
            r.u()
    elif op in (OP_CALL_INDIRECT, OP_RETURN_CALL_INDIRECT):
        r.u()
        r.u()
    elif op in (0x3F, 0x40):  # memory.size / memory.grow: memory index
        r.u()
    elif op == 0x41:
        r.s(32)
    elif op == 0x42:
        r.s(64)
    elif op == 0x43:
        r.bytes(4)
    elif op == 0x44:
        r.bytes(8)
    elif op == 0x1C:  # select t*
        for _ in range(r.u()):
            r.byte()
    elif op == 0xD0:  # ref.null t
        r.byte()
    elif op == PREFIX_MISC:
        sub = r.u()
        if sub <= 7:
            pass
        elif sub == 8:  # memory.init data mem
            r.u()
            r.u()
        elif sub in (9, 13, 11, 15, 16, 17):  # data.drop, elem.drop, memory.fill, table.grow/size/fill
            r.u()
        elif sub in (10, 12, 14):  # memory.copy, table.init, table.copy
            r.u()
            r.u()
        else:
            raise WasmError(f"unknown instruction 0xFC {sub} at offset {at}")
        return sub
    elif op == PREFIX_SIMD:
        sub = r.u()
        if sub in _SIMD_MEMARG:
            _memarg(r)
        elif sub in (12, 13):  # v128.const, i8x16.shuffle
            r.bytes(16)
        elif sub in _SIMD_LANE:
            r.byte()
        elif sub in _SIMD_MEMARG_LANE:
            _memarg(r)
            r.byte()
        elif sub > 275:
            raise WasmError(f"unknown SIMD instruction 0xFD {sub} at offset {at}")
        return sub
    else:
        raise WasmError(f"unsupported opcode 0x{op:02X} at offset {at} (threads, exceptions and GC are not supported)")
    return -1


def iter_instructions(data: bytes, pos: int, end: int):  # type: ignore[no-untyped-def]
    """Yield `(opcode byte, start, end)` for each instruction in `data[pos:end]`."""
    r = Reader(data, pos, end)
    while not r.done:
        at = r.pos
        op = r.byte()
        skip_immediates(r, op, at)
        yield op, at, r.pos
