"""`manage.py`: one module per script in this package.

Each script module has a docopt usage text as its docstring, a one-line `SUMMARY`,
and `main(argv: list[str]) -> int`. Scripts are listed in `SCRIPTS` (name -> module).
"""
from __future__ import annotations

import importlib
import sys

# name -> module under cli/ (a name can differ from its module, e.g. `if` aliases)
SCRIPTS: dict[str, str] = {}


def _register() -> None:
    import pkgutil
    import cli as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        SCRIPTS[info.name.rstrip("_")] = info.name  # `list_` -> `list`


def _summary(mod_name: str) -> str:
    try:
        mod = importlib.import_module(f"cli.{mod_name}")
        return str(getattr(mod, "SUMMARY", ""))
    except Exception as e:  # a broken script must not break the listing
        return f"(unavailable: {e})"


def usage() -> str:
    lines = ["Usage: python manage.py <script> [<args>...]", "", "Available scripts:"]
    for name in sorted(SCRIPTS):
        lines.append(f"    {name:<18}  {_summary(SCRIPTS[name])}")
    lines.append("")
    lines.append("Use `python manage.py <script> -h` for the help of one script.")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    _register()
    if argv and argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if not argv:  # a usage mistake (exit 2): the script list, and one line saying what is missing
        print(usage())
        print("manage.py: name a script to run, e.g. `python manage.py list` (the scripts above; "
              "`python manage.py -h` lists them too)", file=sys.stderr)
        return 2
    name = argv[0]
    if name not in SCRIPTS:
        import difflib

        close = difflib.get_close_matches(name, SCRIPTS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        print(f"manage.py: unknown script {name!r}; {hint}`python manage.py -h` lists them", file=sys.stderr)
        return 2
    mod = importlib.import_module(f"cli.{SCRIPTS[name]}")
    return int(mod.main(argv[1:]) or 0)
