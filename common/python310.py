"""The one finder of Python 3.10 (wasmer's builds stop at CPython 3.10): the `linux/min/wasmer`
runtime execs its worker under it, the `wasmer-*` benchmark engines exec their runs under it.

Order: an explicit setting (`wasmer_python` / `--wasmer-python`), the project's `.venv310`
(made by `make env`), then `python3.10` under ~/.pyenv/versions/3.10* or on PATH.
- `find_wasmer_python`: the first that can `import wasmer, wasmer_compiler_cranelift, orjson,
  posix_ipc` (a worker runs in it: it is asked, once per process);
- `find_with(packages)`: the first whose site-packages holds the packages' directories (no
  process started: the benchmark engines ask on every availability check; the answer is cached).
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV310 = os.path.join(PROJECT_ROOT, ".venv310")
NEEDED = "import wasmer, wasmer_compiler_cranelift, orjson, posix_ipc"
HOW_TO = ("install Python 3.10 (e.g. `pyenv install 3.10`) and run `make env`, which creates .venv310 with "
          "wasmer==1.1.0 wasmer_compiler_cranelift==1.1.0 posix-ipc sysv-ipc orjson setproctitle")

_cache: Dict[Optional[str], Tuple[Optional[str], str]] = {}


def candidates(explicit: Optional[str] = None) -> List[str]:
    if explicit:
        return [explicit]
    found = [os.path.join(VENV310, "bin", "python")]
    found += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")), reverse=True)
    on_path = shutil.which("python3.10")
    if on_path:
        found.append(on_path)
    return found


def site_packages(python: str) -> str:
    """The site-packages of a venv's or an installation's python3.10 (`<prefix>/lib/python3.10/site-packages`)."""
    return os.path.join(os.path.dirname(os.path.dirname(python)), "lib", "python3.10", "site-packages")


def _works(python: str) -> Tuple[bool, str]:
    if not os.path.exists(python):
        return False, f"{python} does not exist"
    try:
        p = subprocess.run([python, "-c", NEEDED], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{python}: {e}"
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"{python}: {last}"
    return True, ""


def find_wasmer_python(explicit: Optional[str] = None) -> Tuple[Optional[str], str]:
    """(path, "") of a wasmer-capable Python, or (None, why not and what to install)."""
    if explicit in _cache:
        return _cache[explicit]
    reasons = []
    answer: Tuple[Optional[str], str] = (None, "")
    for c in candidates(explicit):
        ok, why = _works(c)
        if ok:
            answer = (c, "")
            break
        reasons.append(why)
    else:
        answer = (None, f"no Python with wasmer found ({'; '.join(reasons)}): {HOW_TO}")
    _cache[explicit] = answer
    return answer


@lru_cache(maxsize=None)
def find_with(packages: Tuple[str, ...]) -> Optional[str]:
    """The first Python 3.10 of `candidates()` that can run and whose site-packages has a directory
    for each of `packages`; None when none has."""
    for c in candidates():
        site = site_packages(c)
        if os.access(c, os.X_OK) and all(os.path.isdir(os.path.join(site, p)) for p in packages):
            return c
    return None
