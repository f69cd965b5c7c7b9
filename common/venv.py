"""Let `python manage.py ...`, `python start.py ...`, `python -m orchestrator` and
`python -m collector` work as typed in a new shell.

`make env` installs the project's packages into `.venv`, but a new shell's `python` is the
system one, which lacks them (`No module named 'rich'`). The two entry scripts call `ensure()`,
the two packages' `__main__` `ensure_module()`, before importing anything else: when a package
the tools need is missing and `.venv/bin/python` exists, the program re-executes itself under it
(same arguments, same working directory); without a `.venv` it says to run `make env` and exits 2.
Standard library only. (For `-m`, Python imports the package's `__init__` before `__main__`
runs, so those `__init__` files import no third-party package at top level.)
"""
from __future__ import annotations

import importlib.util
import os
import sys

NEEDED = ("docopt", "orjson", "paho", "rich")  # a missing one means "not the project's interpreter"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")


def missing() -> list[str]:
    return [m for m in NEEDED if importlib.util.find_spec(m) is None]


def ensure(script: str) -> None:
    """Re-exec `script` under the project's venv when this interpreter lacks its packages."""
    name = os.path.basename(script)
    _ensure([os.path.abspath(script)], name, f"python {name}")


def ensure_module(module: str) -> None:
    """The same for `python -m module` (call it from the package's `__main__`)."""
    _ensure(["-m", module], module, f"python -m {module}")


def _ensure(how: list[str], name: str, shown: str) -> None:
    lost = missing()
    if not lost:
        return
    in_venv = os.path.realpath(sys.prefix) == os.path.realpath(os.path.dirname(os.path.dirname(VENV_PYTHON)))
    if os.path.exists(VENV_PYTHON) and not in_venv and not os.environ.get("SL_REEXEC"):
        os.environ["SL_REEXEC"] = "1"  # at most once, whatever that interpreter lacks
        os.execv(VENV_PYTHON, [VENV_PYTHON, *how, *sys.argv[1:]])
    print(f"{name}: this Python ({sys.executable}) lacks {', '.join(lost)}; "
          f"run `make env` in {ROOT}, then `{shown}` again "
          f"(or use {VENV_PYTHON})", file=sys.stderr)
    raise SystemExit(2)
