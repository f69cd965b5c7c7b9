"""What every engine adapter answers, and the helpers they share (package and program versions,
running a compiler)."""
from __future__ import annotations

import subprocess
from functools import lru_cache

from benchmarking.engines.catalog import EngineNotAvailable
from benchmarking.engines.invocation import Invocation, Prepared

COMPILE_LIMIT = 600.0


class AotError(EngineNotAvailable):
    """An artifact could not be built; the text names the engine, the module and the compiler's words."""


class Adapter:
    """One engine family. `names` are the canonical engine names it runs; an AOT engine has an
    `ext` (artifact suffix) and a `layout_dir` (the original's directory under `aot/`)."""
    family = ""
    ext: dict[str, str] = {}         # AOT engine -> artifact extension
    # AOT engine -> directory under aot/ in the original's layout: its names where they correspond
    # (docs/compatibility.md, "The original engines")
    layout_dir: dict[str, str] = {}

    def installed(self, name: str) -> tuple[bool, str]:
        """(installed, what / why not) for one canonical engine name, without the conformance verdict."""
        raise NotImplementedError

    def version(self, name: str) -> str | None:
        """The version of the engine's package or program; None when it is not installed."""
        raise NotImplementedError

    def prepare(self, name: str, inv: Invocation, artifact: str | None) -> Prepared:
        """A launcher for one run; `artifact` is the compiled module for AOT engines (aot.py)."""
        raise NotImplementedError

    def compile(self, name: str, path: str, out: str) -> None:
        """Compile `path` for AOT engine `name` into `out` (aot.py makes it atomic and keyed)."""
        raise AotError(f"engine {name!r} has no AOT artifacts")


@lru_cache(maxsize=None)
def pkg_version(dist: str) -> str | None:
    """The installed version of a Python distribution, looked up once per process (importlib.metadata
    parses the METADATA file: ~0.7 ms, paid by every cell before this cache). A package upgraded under
    a running node is seen when the node restarts (its workers imported the old one anyway)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


@lru_cache(maxsize=None)
def program_version(argv: tuple[str, ...]) -> str | None:
    """The first word of `PROGRAM --version` (the second after a leading `wasmtime`), without a `v`."""
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (p.stdout or p.stderr).strip()
    return text.split()[1 if text.startswith("wasmtime") else 0].lstrip("v") if p.returncode == 0 and text else None


def run_compiler(cmd: list[str], name: str, path: str, env: dict[str, str] | None = None) -> None:
    """Run one compiler command; AotError with its last output lines when it fails."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_LIMIT, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise AotError(f"engine {name!r}: compiling {path} failed: {e}") from None
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        raise AotError(f"engine {name!r}: compiling {path} failed (exit {p.returncode}): {' | '.join(tail)}")
