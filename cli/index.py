"""Index executable benchmark files, excluding common files: every file under DIR (inside
PREFIX) whose path has no `common` part, printed space-separated for `manage.py run -f` or
`benchmark` (`manage.py benchmark -f $(manage.py index -d wasm/polybench) ...`, the original's
documented use). `--set T` prints T-item combinations joined by `:` (for interference runs).

Usage:
    manage.py index [options] [-r SUBST...]...
    manage.py index -h | --help

Options:
    -d, --dir DIR           Directory to index, relative to PREFIX [default: wasm].
    -p, --prefix PREFIX     Base directory; printed paths are relative to it [default: benchmarks].
    -r, --replace SUBST...  Substitutions SRC=DST applied to every path (several after one flag, as the original).
    -s, --shuffle           Shuffle the files.
    -t, --set T             Print sets of T files joined by `:` (each position shuffled separately).
    -n, --limit N           Print at most N files (or sets).
    --seed N                Random seed for --shuffle / --set (reproducible lists).
    -v, --verbose LEVEL     Log level [default: WRN].
"""
from __future__ import annotations

import os
import random
from typing import Any

from cli._api import CliError, guard, parse, setup

SUMMARY = "Index executable benchmark files, excluding common files."


def index(base: str, rel: str) -> list[str]:
    """Files under `base/rel` (paths relative to `base`), skipping any entry named like `*common*`, sorted."""
    out: list[str] = []
    top = os.path.join(base, rel)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if "common" not in d)
        for f in sorted(filenames):
            if "common" not in f:
                out.append(os.path.relpath(os.path.join(dirpath, f), base))
    return out


def _substitutions(items: list[str]) -> list[tuple[str, str]]:
    subs = []
    for s in items:
        src, eq, dst = s.partition("=")
        if not eq or not src:
            raise CliError(f"--replace {s!r} must be SRC=DST")
        subs.append((src, dst))
    return subs


@guard("index")
def main(argv: list[str]) -> int:
    opts: dict[str, Any] = parse(__doc__, "index", argv, multi=("-r", "--replace"))
    setup(opts)
    top = os.path.join(opts["--prefix"], opts["--dir"])
    if not os.path.isdir(top):
        raise CliError(f"directory {top!r} does not exist (--prefix {opts['--prefix']!r}, --dir {opts['--dir']!r})")
    subs = _substitutions(opts["--replace"])
    try:
        rng = random.Random(int(opts["--seed"])) if opts["--seed"] is not None else random.Random()
        size = int(opts["--set"]) if opts["--set"] is not None else 0
        limit = int(opts["--limit"]) if opts["--limit"] is not None else None
    except ValueError:
        raise CliError(f"--seed, --set and --limit must be whole numbers, got {opts['--seed']!r} / {opts['--set']!r}"
                       f" / {opts['--limit']!r}") from None
    files = []
    for p in index(opts["--prefix"], opts["--dir"]):
        for src, dst in subs:
            p = p.replace(src, dst)
        files.append(p)
    if size > 0:
        columns = []
        for _ in range(size):
            col = list(files)
            rng.shuffle(col)
            columns.append(col)
        files = [":".join(group) for group in zip(*columns)]
    elif opts["--shuffle"]:
        rng.shuffle(files)
    if limit is not None:
        if limit < 0:
            raise CliError(f"--limit must be >= 0, got {limit}")
        files = files[:limit]
    print(" ".join(files))
    return 0
