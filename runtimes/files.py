"""The node's file policy: every path a create message names is looked up through the module roots.

One policy for every runtime (`linux`, the minimal runtimes, every benchmarking runtime) and every
path field of a create: the module `file`, `args.dirs`, `args.dirmode`, `args.scriptmode`,
`args.stdout`, and the executables the native and command-line engines would start.

- A relative name is tried under each root in order; an absolute one must lie inside a root.
- Symlinks and `..` are resolved first (realpath), so nothing can name a file outside the roots.
  A relative name must stay inside the root it is joined with (`../` out of it is refused, also
  when it lands in another root).
- Bind mounts: a path that crosses a mount point below its root is refused too (a bind mount can
  show any directory inside a root). Make such a mount a root of its own if it is meant.
- Roots come from the runtime setting `module_root` (a path, a `:`-separated string or a list;
  `start.py --module-root` sets it for every runtime); the default is the project's
  `build/modules` (where `make modules` puts the examples) only: never the node's working or state
  directory, which hold its config.json, password file and identity (issue #25).

Preopened dirs (`args.dirs`): an absolute entry is preopened at its own path (as before); a relative
one (the original's benchmark creates send `"."`) resolves like a module file and is preopened as
`.`, as the original's `--dir=.` did; `HOST::GUEST` names the guest path explicitly (wasmtime's CLI
syntax). Engines get a plain `HOST` when the guest path is the same, else `HOST::GUEST`, and split
them with `preopen_pair` (common/preopen.py).

Python 3.10 compatible (the wasmer runtime runs this under 3.10); no third-party imports.
"""
from __future__ import annotations

import os
import stat
from typing import Callable, List, Optional, Sequence, Tuple, Union

from common.preopen import PREOPEN_SEP, preopen_pair

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# never the working directory or the state directory: those hold config.json, its password file, the identity
DEFAULT_ROOTS = (os.path.join(PROJECT_ROOT, "build", "modules"),)
EXTENSIONS = (".wasm", ".wat", ".cwasm")


class ModuleFileError(Exception):
    """A path of a create message that cannot be used; the message names the field, the path and why."""


def default_roots() -> List[str]:
    return [os.path.realpath(r) for r in DEFAULT_ROOTS]


def _unescape_mount(path: str) -> str:
    """/proc/self/mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    out, i = [], 0
    while i < len(path):
        code = path[i + 1:i + 4]
        if path[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> List[str]:
    """The mount points (field 5) of a /proc/PID/mountinfo text."""
    return [_unescape_mount(f[4]) for f in (line.split() for line in text.splitlines()) if len(f) > 4]


def mount_points() -> List[str]:
    """Every mount point of this process's mount namespace (empty where /proc is missing)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            return parse_mountinfo(f.read())
    except OSError:
        return []


def _is_file(p: str) -> bool:
    return os.path.isfile(p)


def _is_dir(p: str) -> bool:
    return os.path.isdir(p)


def _is_executable(p: str) -> bool:
    return os.path.isfile(p) and os.access(p, os.X_OK)


def _is_output(p: str) -> bool:
    """A file a run may write: a regular file, or a new name in an existing directory."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return os.path.isdir(os.path.dirname(p))
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode)


class ModuleFiles:
    """Resolves the paths of create messages against the allowed roots (see the module docstring)."""

    def __init__(self, roots: Union[None, str, Sequence[str]] = None,
                 mounts: Optional[Callable[[], List[str]]] = None) -> None:
        if roots is None or roots == [] or roots == "":
            self.roots = default_roots()
        elif isinstance(roots, str):
            self.roots = [os.path.realpath(os.path.expanduser(r)) for r in roots.split(os.pathsep) if r]
        else:
            self.roots = [os.path.realpath(os.path.expanduser(str(r))) for r in roots]
        self._mounts = mounts or mount_points

    @staticmethod
    def _within(root: str, path: str) -> bool:
        try:
            return os.path.commonpath([root, path]) == root
        except ValueError:
            return False

    def within(self, path: str) -> bool:
        """Is the real path of `path` inside some root?"""
        real = os.path.realpath(path)
        return any(self._within(r, real) for r in self.roots)

    def _crossed_mount(self, root: str, real: str) -> Optional[str]:
        """A mount point strictly below `root` on the way to `real` (None when there is none)."""
        if real == root:
            return None
        for m in self._mounts():
            if m != root and self._within(root, m) and self._within(m, real):
                return m
        return None

    def _resolve(self, name: object, what: str, ok: Callable[[str], bool], missing: str) -> str:
        if not isinstance(name, str) or not name.strip():
            raise ModuleFileError(f"{what} must be a non-empty string, got {name!r}")
        if "\0" in name:
            raise ModuleFileError(f"{what} {name!r} contains a NUL byte")
        if os.path.isabs(name):
            pairs = [(root, os.path.realpath(name)) for root in self.roots]
        else:
            pairs = [(root, os.path.realpath(os.path.join(root, name))) for root in self.roots]
        escaped = None
        mounted: Optional[str] = None
        for root, real in pairs:
            if not self._within(root, real):
                escaped = escaped or real
                continue
            if ok(real):
                mount = self._crossed_mount(root, real)
                if mount is None:
                    return real
                mounted = mounted or (f"{what} {name!r} lies under the mount point {mount} inside the module "
                                      f"root {root} (a bind mount can show anything there): refused; make "
                                      f"that mount a module root of its own if it is meant")
        if mounted is not None:
            raise ModuleFileError(mounted)
        if escaped is not None and (not os.path.isabs(name) or
                                    not any(self._within(r, p) for r, p in pairs)):
            raise ModuleFileError(f"{what} {name!r} is outside the module roots {self.roots} "
                                  f"(it resolves to {escaped}): refused")
        raise ModuleFileError(f"{what} {name!r} {missing} in the module roots {self.roots} "
                              f"(put it under a root, or name its directory with start.py --module-root)")

    def resolve(self, name: object, what: str = "module file") -> str:
        """The real path of module file `name`, or ModuleFileError (the `linux` runtime's messages)."""
        return self._resolve(name, what, _is_file, "not found")

    def resolve_file(self, name: object, what: str) -> str:
        """An existing regular file inside the roots (`args.scriptmode`, ...)."""
        return self._resolve(name, what, _is_file, "is not a file")

    def resolve_dir(self, name: object, what: str) -> str:
        """An existing directory inside the roots (`args.dirs`, `args.dirmode`)."""
        return self._resolve(name, what, _is_dir, "is not a directory")

    def resolve_executable(self, name: object, what: str) -> str:
        """An executable regular file inside the roots (native engines, AOT executables)."""
        return self._resolve(name, what, _is_executable, "is not an executable file")

    def resolve_output(self, name: object, what: str) -> str:
        """A file a run may create or append to (`args.stdout`): inside the roots, a regular file or
        a new name in an existing directory there. A symlink out of the roots is refused."""
        return self._resolve(name, what, _is_output, "cannot be written (no such directory, or not a regular file)")

    def preopens(self, dirs: Sequence[str], what: str = "args.dirs") -> List[str]:
        """The `HOST::GUEST` preopens of a create's `args.dirs` (see the module docstring)."""
        out: List[str] = []
        dot = None
        for entry in dirs:
            host, guest = preopen_pair(entry)
            if PREOPEN_SEP not in entry and not os.path.isabs(entry):
                if dot is not None:
                    raise ModuleFileError(f"{what}: both {dot!r} and {entry!r} are relative and would be "
                                          f"preopened as '.'; give the others as HOST::GUEST")
                dot, guest = entry, "."
            elif not guest:
                raise ModuleFileError(f"{what} entry {entry!r} has an empty guest path after '::'")
            real = self.resolve_dir(host, f"{what} entry")
            out.append(real if guest == real else f"{real}{PREOPEN_SEP}{guest}")
        return out
