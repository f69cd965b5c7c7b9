"""AOT artifacts of the benchmark engines: a cache over the adapters' compile, one artifact per
(module hash, engine version, target).

Where a run looks (first match wins):
1. the original's layout beside the module (docs/compatibility.md, "The original engines"): for
   `.../wasm/dir/m.wasm`,
   `.../aot/<layout dir of the engine>/dir/m.wasm` (name and suffix kept), made by
   `manage.py aot --local`, with a sidecar `<artifact>.key` (JSON: module sha256, engine version,
   target) that must match; a stale artifact (module rebuilt, engine upgraded) is ignored and said
   so in the log;
2. the node's cache `~/.cache/silverline/aot/<engine>/<sha256[:32]>-<version>-<target>.<ext>`,
   built here on first use (compilers run in a child: the worker never runs wasm).
Artifacts are trusted native code: the cache is private (0700) and written atomically.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import tempfile

from benchmarking.engines import catalog
from benchmarking.engines.adapters.base import AotError
from benchmarking.engines.families import ADAPTERS, adapter
from benchmarking.engines.invocation import module_hash

log = logging.getLogger("rt.benchmarking")

AOT_DIR = os.path.join(os.path.expanduser("~"), ".cache", "silverline", "aot")
# artifact extension and layout directory per AOT engine, from the adapters
EXT = {n: e for a in ADAPTERS.values() for n, e in a.ext.items()}
LAYOUT_DIR = {n: d for a in ADAPTERS.values() for n, d in a.layout_dir.items()}
assert sorted(EXT) == sorted(catalog.aot_names()) == sorted(LAYOUT_DIR), "every AOT engine has an adapter's compile"

__all__ = ["AOT_DIR", "EXT", "LAYOUT_DIR", "AotError", "aot_engines", "artifact", "build", "cache_path", "key",
           "layout_path", "target"]


def target() -> str:
    """This node's target: `<machine>-linux` (the only one these compilers build for here)."""
    return f"{platform.machine()}-{platform.system().lower()}"


def aot_engines() -> list[str]:
    return catalog.aot_names()


def key(name: str, path: str) -> dict[str, str]:
    return {"module_sha256": module_hash(path), "engine": name,
            "version": adapter(name).version(name) or "?", "target": target()}


def layout_path(name: str, path: str, root: str | None = None) -> str | None:
    """The original's artifact path for a module under a `wasm/` dir (None when it is not)."""
    parts = os.path.abspath(path).split(os.sep)
    if "wasm" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("wasm")
    base = root or os.sep.join(parts[:i])
    return os.path.join(base, "aot", LAYOUT_DIR.get(name, name), *parts[i + 1:])


def cache_path(name: str, path: str) -> str:
    k = key(name, path)
    v = k["version"].replace("/", "_").replace(" ", "_")
    return os.path.join(AOT_DIR, name, f"{k['module_sha256'][:32]}-{v}-{k['target']}.{EXT[name]}")


def _matches(artifact: str, name: str, path: str) -> bool:
    try:
        with open(artifact + ".key") as f:
            return bool(json.load(f) == key(name, path))
    except (OSError, ValueError):
        return False


def artifact(name: str, path: str) -> str:
    """The artifact of `path` for AOT engine `name`: the layout's when it matches, else the cache's
    (built now when missing). AotError when the compiler fails."""
    name = catalog.resolve(name)
    lay = layout_path(name, path)
    if lay and os.path.exists(lay):
        if _matches(lay, name, path):
            return lay
        log.warning("ignoring stale AOT artifact %s (module, engine version or target changed): "
                    "rebuild it with `manage.py aot --local`", lay)
    out = cache_path(name, path)
    if not os.path.exists(out):
        build(name, path, out)
    return out


def build(name: str, path: str, out: str) -> str:
    """Compile `path` for `name` into `out` (atomically) with its `.key` sidecar; return `out`."""
    if name not in EXT:
        raise AotError(f"engine {name!r} has no AOT artifacts (AOT engines: {', '.join(EXT)})")
    os.makedirs(os.path.dirname(out), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), prefix=".tmp-")
    os.close(fd)
    try:
        adapter(name).compile(name, path, tmp)
        os.chmod(tmp, 0o700 if name == "wasm2c-a" else 0o600)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    with open(out + ".key", "w") as f:
        json.dump(key(name, path), f)
    return out
