"""AOT compile WebAssembly sources for cluster devices.

For every target among the selected devices (manifest Target column, else Triple), compiles
each file with each engine marked on those devices (or --engine), into
<out>/<target>/<engine>/<module>.<ext>. Engines that cannot cross-compile are listed with the
reason. Runs locally; copy the results with `manage.py put`.

With --local: build this node's artifacts for the benchmark engines (wasmtime-a, wasmtime-a-b,
wasmtime-cli-a, wasmer-a-cl, wasmer-a-sp, wasmer-a-ll, wasm2c-a; default every one installed),
in the original's layout beside each module (`.../wasm/d/m.wasm` -> `.../aot/<engine dir>/d/m.wasm`,
with a `.key` naming the module hash, engine version and target); the benchmarking runtimes find
them by the module's path and ignore stale ones (docs/benchmarking.md).

Usage:
    manage.py aot [options] [-o DIR] [(--engine=ENGINE)...] [--opt_level=LEVEL] <file>...
    manage.py aot --local [(--engine=ENGINE)...] <file>...

Options:
    -o DIR, --out=DIR           Output directory [default: build/aot].
    --engine=ENGINE             Engine (wasmtime, wasmer, wamr/iwasm, ...); repeatable. Default: the
                                engine columns marked on each device.
    --opt_level=LEVEL           Cranelift opt level of wasmtime artifacts; must match the runtime's [default: speed].
%s
"""
from __future__ import annotations

import os

from cluster.aot import precompile
from cluster.options import COMMON_OPTIONS, UsageError, guard, load_context, parse

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "AOT compile WebAssembly sources for cluster devices."


def local(files: list[str], names: list[str]) -> int:
    """Build the benchmark engines' artifacts of `files` beside them; 1 when one failed."""
    from benchmarking.engines import aot
    from benchmarking.engines import launch as engines

    known = aot.aot_engines()
    bad = [n for n in names if engines.resolve(n) not in known]
    if bad:
        raise UsageError(f"aot --local: {bad[0]!r} is not an AOT benchmark engine (choose from {', '.join(known)})")
    todo = [engines.resolve(n) for n in names] or [n for n in known if engines.availability(n)[0]]
    outside = [f for f in files if aot.layout_path(todo[0] if todo else "wasmtime-a", f) is None]
    if outside:
        raise UsageError(f"aot --local: {outside[0]!r} is not under a `wasm/` directory (the original's layout "
                         f"puts artifacts in the `aot/` beside it)")
    failed = built = 0
    for name in todo:
        ok, why = engines.availability(name)
        if not ok:
            print(f"{name:<15} cannot: {why}")
            failed += 1
            continue
        for f in files:
            out = str(aot.layout_path(name, f))
            try:
                aot.build(name, f, out)
            except engines.EngineNotAvailable as e:
                print(f"{name:<15} {os.path.basename(f):<20} FAILED: {e}")
                failed += 1
                continue
            built += 1
            print(f"{name:<15} {os.path.basename(f):<20} {out} ({os.path.getsize(out)} bytes)")
    print(f"{built} built, {failed} failed")
    return 1 if failed else 0


@guard
def main(argv: list[str]) -> int:
    args = parse(__doc__, "aot", argv)
    files = [os.path.abspath(f) for f in args["<file>"]]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise UsageError(f"aot: no such file {missing[0]!r}")
    if args["--local"]:
        return local(files, list(dict.fromkeys(args["--engine"])))  # docopt repeats a value of two patterns
    if args["--opt_level"] not in ("none", "speed", "speed_and_size"):
        raise UsageError(f"--opt_level must be none, speed or speed_and_size, got {args['--opt_level']!r}")
    ctx = load_context(args)
    if ctx.dry_run:
        for d in ctx.devices:
            print(f"{d.name}: target {d.target or d.triple!r} engines {', '.join(args['--engine'] or d.engines) or '(none)'}")
        return 0
    results = precompile(ctx.devices, files, args["--out"], list(args["--engine"]) or None, args["--opt_level"])
    if not results:
        print("nothing to do: no engine marked on these devices (pass --engine)")
        return 0
    said: set[tuple[str, str, str]] = set()
    for o in results:
        head = f"{o.target:<16} {o.engine:<9} {os.path.basename(o.src):<20}"
        if o.cannot:
            if (o.target, o.engine, o.cannot) not in said:  # one line per target and engine
                said.add((o.target, o.engine, o.cannot))
                print(f"{o.target:<16} {o.engine:<9} {'(all files)':<20} cannot: {o.cannot}")
        elif o.error:
            print(f"{head} FAILED: {o.error}")
        else:
            print(f"{head} {o.out} ({o.bytes} bytes) for {', '.join(o.devices)}")
    ok = sum(1 for o in results if o.out)
    failed = sum(1 for o in results if o.error)
    cannot = sum(1 for o in results if o.cannot)
    print(f"{ok} compiled, {failed} failed, {cannot} not possible with the engines here")
    return 1 if failed and not ctx.ignore_err else 0
