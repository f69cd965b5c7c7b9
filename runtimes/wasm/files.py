"""Where a create message's `file` is looked up, and which paths are refused.

A relative `file` is tried under each module root in order; an absolute one must lie inside a
root. Symlinks and `..` are resolved first (realpath), so nothing can name a file outside the
roots. Roots come from the runtime setting `module_root` (a path or a list); the default is the
project's `build/modules` (where `make modules` puts the examples) and then the worker's current
directory.

Python 3.10 compatible.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Union

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_ROOTS = (os.path.join(PROJECT_ROOT, "build", "modules"), ".")
EXTENSIONS = (".wasm", ".wat", ".cwasm")


class ModuleFileError(Exception):
    """The file cannot be used; the message names it and says why."""


def default_roots() -> List[str]:
    return [os.path.realpath(r) for r in DEFAULT_ROOTS]


class ModuleFiles:
    """Resolves module file names against allowed roots."""

    def __init__(self, roots: Union[None, str, Sequence[str]] = None) -> None:
        if roots is None or roots == [] or roots == "":
            self.roots = default_roots()
        elif isinstance(roots, str):
            self.roots = [os.path.realpath(os.path.expanduser(r)) for r in roots.split(os.pathsep) if r]
        else:
            self.roots = [os.path.realpath(os.path.expanduser(str(r))) for r in roots]

    @staticmethod
    def _within(root: str, path: str) -> bool:
        try:
            return os.path.commonpath([root, path]) == root
        except ValueError:
            return False

    def resolve(self, name: object) -> str:
        """The real path of module file `name`, or ModuleFileError.

        A relative name must stay inside the root it is joined with (`../` out of it is refused,
        also when it lands in another root); an absolute name must be inside some root.
        """
        if not isinstance(name, str) or not name.strip():
            raise ModuleFileError(f"module file must be a non-empty string, got {name!r}")
        if "\0" in name:
            raise ModuleFileError(f"module file {name!r} contains a NUL byte")
        if os.path.isabs(name):
            pairs = [(root, os.path.realpath(name)) for root in self.roots]
        else:
            pairs = [(root, os.path.realpath(os.path.join(root, name))) for root in self.roots]
        escaped = None
        for root, real in pairs:
            if not self._within(root, real):
                escaped = escaped or real
                continue
            if os.path.isfile(real):
                return real
        if escaped is not None and (not os.path.isabs(name) or
                                    not any(self._within(r, p) for r, p in pairs)):
            raise ModuleFileError(f"module file {name!r} is outside the module roots {self.roots} "
                                  f"(it resolves to {escaped}): refused")
        raise ModuleFileError(f"module file {name!r} not found in the module roots {self.roots}")
