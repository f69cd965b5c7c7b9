"""A benchmark campaign's plan: its expansion into cells, the cells' module names and creates,
and a module's outcome. Shared by the orchestrator (orchestrator/campaigns/), the CLI
(`manage.py benchmark`, which expands a plan itself for `--dry-run` and for an orchestrator that
keeps no campaigns) and the client library; standard library only (and the engine name table,
benchmarking/engines/catalog.py, which is too).

A cell is one (runtime, file, engine, argument set) with `repeat` runs: one module. Cell ids are
the cell's position in the canonical (unshuffled) product: stable across resumes. The run order
is the product shuffled with the plan's recorded seed (engines and files interleaved, so drift
does not line up with a configuration), per runtime (each runtime runs its queue in order).

A cell's outcome is `done`, or failed: `error`, `trap`, `limit`, `killed` (recorded from its
module's `exited`) or `lost` (killed with its runtime, or dead without an exit); a cell not ended
yet is `queued` or `running` (docs/benchmarking.md).
"""
from __future__ import annotations

import itertools
import os
import random
import uuid as uuidlib
from typing import Any

from benchmarking.engines.catalog import resolve as engine_name

FAILED = ("error", "trap", "limit", "killed", "lost")
DATA_PENDING = "data_pending"  # ran to its end; no collector has said its results are stored yet
STATES = ("done",) + FAILED + ("queued", "running", DATA_PENDING)
MAX_CELLS = 2_000_000
WINDOW = 3  # cells of a campaign in flight per runtime (one running, the others created ahead)
MAX_WINDOW = 64

Cell = tuple[int, str, str, str, list[str]]  # (cell index, runtime, file, engine, argv)


class PlanError(ValueError):
    """A plan that cannot be expanded; the text names the key and what it must be."""


def _strs(spec: dict[str, Any], key: str, where: str) -> list[str]:
    v = spec.get(key)
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise PlanError(f"{where}: plan.{key} must be a non-empty list of strings, got {v!r}")
    return list(v)


def _argsets(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(a, list) and all(isinstance(x, str) for x in a) for a in v)


def module_name(file: str, engine: str) -> str:
    """The seed's benchmark module name: base name before the first '.' (of the last file of an
    interference tuple), then '.<engine>' (e.g. `2mm.wasmtime-j`)."""
    return os.path.basename(file.split(":")[-1]).split(".")[0] + "." + engine


def window_of(spec: dict[str, Any], where: str = "plan") -> int:
    """The plan's `window` (cells in flight per runtime), default WINDOW."""
    window = spec.get("window", WINDOW)
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW:
        raise PlanError(f"{where}: plan.window must be an integer in 1..{MAX_WINDOW} (cells in flight per runtime), got {window!r}")
    return window


def expand(spec: dict[str, Any], where: str = "plan") -> list[Cell]:
    """The cells of a plan, in run order: (cell index, runtime, file, engine, argv).

    spec: `runtimes`, `files`, `engines` (lists of names), `argsets` (list of argv lists, default
    [[]]; `argsets_by_file` {file: [argv, ...]} overrides it per file), `seed` (int: the run
    order), `order` ("shuffle", the default, or "plan": runtime x file x engine x argset as given),
    `window` (see `window_of`). Engine aliases become the catalog's names (`wasmtime` -> `wasmtime-j`)."""
    runtimes = _strs(spec, "runtimes", where)
    files = _strs(spec, "files", where)
    engines = list(dict.fromkeys(engine_name(e) for e in _strs(spec, "engines", where)))  # aliases: one engine, one name
    argsets = spec.get("argsets", [[]])
    if not _argsets(argsets):
        raise PlanError(f"{where}: plan.argsets must be a non-empty list of argument lists (lists of strings)")
    by_file = spec.get("argsets_by_file") or {}
    if not isinstance(by_file, dict) or not all(_argsets(v) for v in by_file.values()):
        raise PlanError(f"{where}: plan.argsets_by_file must map a file to a non-empty list of argument lists")
    per_file = [(f, by_file.get(f, argsets)) for f in files]
    per = sum(len(a) for _f, a in per_file) * len(engines)
    n = len(runtimes) * per
    if n > MAX_CELLS:
        raise PlanError(f"{where}: {n} cells is more than {MAX_CELLS}; split the campaign")
    seed = spec.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PlanError(f"{where}: plan.seed must be an integer, got {seed!r}")
    window_of(spec, where)
    order = spec.get("order", "shuffle")
    if order not in ("shuffle", "plan"):
        raise PlanError(f"{where}: plan.order must be 'shuffle' or 'plan', got {order!r}")
    out: list[Cell] = []
    rng = random.Random(seed)
    for r, rt in enumerate(runtimes):
        combos = [(f, e, a) for f, sets in per_file for e, a in itertools.product(engines, sets)]
        cells = [(r * per + i, rt, f, e, list(a)) for i, (f, e, a) in enumerate(combos)]
        if order == "shuffle":
            rng.shuffle(cells)
        out.extend(cells)
    return out


def cell_module(cid: str, idx: int, parent: str, file: str, engine: str, argv: list[str], args: dict[str, Any],
                uuid: str, name: str | None = None) -> dict[str, Any]:
    """A cell's module as a create names it (the orchestrator's, and the CLI's against an
    orchestrator without campaigns)."""
    return {"type": "module", "uuid": uuid, "name": name or module_name(file, engine), "parent": parent, "file": file,
            "args": {**args, "engine": engine, "argv": argv, "campaign": cid, "cell": idx}}


def outcome_of(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(cell outcome, record) from a module's `exited` data (ours or the original runtimes')."""
    st = data.get("status")
    if isinstance(st, str):  # the original runtimes: "exited"
        st = {"reason": st, "code": 0 if st == "exited" else None, "error": None}
    if not isinstance(st, dict):
        st = {}
    reason, code, failure = st.get("reason"), st.get("code"), data.get("failure")
    record = {k: v for k, v in data.items() if k not in ("uuid", "type")}
    if reason == "exited" and code in (0, None) and not st.get("error") and not failure:
        return "done", record
    if failure == "trap":
        return "trap", record
    if failure in ("limit", "oom") or reason == "limit":
        return "limit", record
    if failure == "signal" or reason in ("deleted", "killed"):
        return "killed", record
    return "error", record


def new_uuids(n: int) -> list[str]:
    """`n` random (version 4) uuids, drawn from one urandom read (uuid.uuid4() per cell was 6 us
    of a 100k-cell submit's ~40)."""
    raw = os.urandom(16 * n)
    out = []
    for i in range(0, 16 * n, 16):
        b = bytearray(raw[i:i + 16])
        b[6] = (b[6] & 0x0F) | 0x40  # version 4
        b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
        out.append(str(uuidlib.UUID(bytes=bytes(b))))
    return out
