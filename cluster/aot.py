"""Ahead-of-time compilation of WebAssembly modules for each device's target (`manage.py aot`).

Devices are grouped by target (the manifest's Target column, else its Triple); each group
gets `<out>/<target>/<engine>/<module>.<ext>`. Engines:
- wasmtime: the `wasmtime` CLI when on PATH (all code generators: cross-compiles), else the
  Python package in a child process (its wheel only has the host's and pulley's code
  generators; other triples are reported, not crashed on). Settings match our runtime
  (epoch interruption, opt level), or the runtime refuses the artifact.
- wasmer: the `wasmer` CLI when on PATH (`wasmer compile --target TRIPLE`).
- wamr (`iwasm` column): `wamrc` when on PATH (`--target=ARCH --cpu=TARGET`).
- anything else (wasm3, wasmedge, pywasm, native, ...): cannot cross-compile; said so.
Engine words (the manifest's columns, --engine) are read as families of the benchmark engine
catalog (benchmarking/engines/catalog.py): a family (`wasmtime`, `wasmer`, `wamr`), an engine name or
alias (`wasmtime-a`, `wasmer`, `iwasm-a`) or a tool's name (`iwasm`, `wamrc`).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

from benchmarking.engines import catalog
from common.manifest import Device

EXT = {"wasmtime": "cwasm", "wasmer": "wasmu", "wamr": "aot"}
CANNOT = {
    "wasm3": "an interpreter: nothing to precompile",
    "pywasm": "an interpreter: nothing to precompile",
    "wasmedge": "its `wasmedge compile` only targets the machine it runs on; compile on the device",
    "native": "native executables are built by their own toolchain, not from .wasm",
}


@dataclass
class Outcome:
    target: str
    engine: str
    src: str
    out: str | None = None
    bytes: int = 0
    error: str | None = None  # compile failure
    cannot: str | None = None  # the engine cannot do this target (not a failure of the module)
    devices: tuple[str, ...] = ()


def target_key(d: Device) -> str:
    """The directory name of a device's target."""
    return (d.target or d.triple or d.arch or "host").replace("/", "_")


def group_targets(devices: list[Device]) -> dict[str, list[Device]]:
    groups: dict[str, list[Device]] = {}
    for d in devices:
        groups.setdefault(target_key(d), []).append(d)
    return groups


def canonical(engine: str) -> str:
    """The catalog family of an engine word (`iwasm` -> `wamr`, `wasmtime-a` -> `wasmtime`)."""
    return catalog.family(engine)


def out_path(out_dir: str, target: str, engine: str, src: str) -> str:
    stem = os.path.splitext(os.path.basename(src))[0]
    return os.path.join(out_dir, target, engine, f"{stem}.{EXT[engine]}")


def _run(cmd: list[str], timeout: float = 600) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"{cmd[0]} did not finish within {timeout:g}s"
    except OSError as e:
        return -1, f"cannot run {cmd[0]}: {e.strerror}"
    return p.returncode, (p.stderr or p.stdout).strip()


def compile_wasmtime(target: str, triple: str, files: list[str], out_dir: str, opt_level: str) -> list[Outcome]:
    cli = shutil.which("wasmtime")
    outs = [Outcome(target, "wasmtime", f, out_path(out_dir, target, "wasmtime", f)) for f in files]
    if cli:
        for o in outs:
            os.makedirs(os.path.dirname(o.out or "."), exist_ok=True)
            cmd = [cli, "compile", "-W", "epoch-interruption=y", "-O", f"opt-level={_cli_opt(opt_level)}"]
            rc, text = _run(cmd + ([f"--target={triple}"] if triple else []) + ["-o", o.out or "", o.src])
            if rc != 0:
                o.error, o.out = f"wasmtime compile: {text.splitlines()[-1] if text else f'exit {rc}'}", None
            else:
                o.bytes = os.path.getsize(o.out or "")
        return outs
    pairs = [x for o in outs for x in (o.src, o.out or "")]
    try:
        p = subprocess.run([sys.executable, "-m", "cluster.aot_wasmtime", triple, opt_level, *pairs],
                           capture_output=True, text=True, timeout=600, cwd=_project_root())
    except subprocess.TimeoutExpired:
        for o in outs:
            o.error, o.out = "wasmtime (python) did not finish within 600s", None
        return outs
    done = {}
    for line in p.stdout.splitlines():
        try:
            r = json.loads(line)
            done[r["src"]] = r
        except (ValueError, KeyError):
            continue
    if "target is disabled" in p.stderr or (p.returncode < 0 and not done):
        reason = (f"the wasmtime Python wheel here has no code generator for {triple or target!r} "
                  "(it compiles for the host and pulley only); put the wasmtime CLI on PATH or run aot on such a device")
        for o in outs:
            o.cannot, o.out = reason, None
        return outs
    for o in outs:
        r = done.get(o.src)
        if r is None:
            o.error, o.out = f"wasmtime (python) failed: {(p.stderr.strip().splitlines() or ['exit %d' % p.returncode])[-1]}", None
        elif "error" in r:
            o.error, o.out = f"wasmtime: {r['error']}", None
        else:
            o.bytes = int(r["bytes"])
    return outs


def _cli_opt(level: str) -> str:
    return {"none": "0", "speed": "2", "speed_and_size": "s"}.get(level, "2")


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compile_each(target: str, engine: str, files: list[str], out_dir: str, tool: str,
                  argv: Callable[[str, str], list[str]]) -> list[Outcome]:
    """Run `argv(src, out)` for each file into its out_path; an error is the tool's last output line."""
    outs = []
    for f in files:
        o = Outcome(target, engine, f, out_path(out_dir, target, engine, f))
        os.makedirs(os.path.dirname(o.out or "."), exist_ok=True)
        rc, text = _run(argv(f, o.out or ""))
        if rc != 0:
            o.error, o.out = f"{tool}: {text.splitlines()[-1] if text else f'exit {rc}'}", None
        else:
            o.bytes = os.path.getsize(o.out or "")
        outs.append(o)
    return outs


def compile_wasmer(target: str, triple: str, files: list[str], out_dir: str) -> list[Outcome]:
    cli = shutil.which("wasmer")
    if not cli:
        why = "the wasmer CLI is not on PATH (install it to cross-compile with `wasmer compile --target`)"
        return [Outcome(target, "wasmer", f, cannot=why) for f in files]
    target_args = ["--target", triple] if triple else []
    return _compile_each(target, "wasmer", files, out_dir, "wasmer compile",
                         lambda src, out: [cli, "compile", src, "-o", out] + target_args)


def compile_wamr(target: str, device: Device, files: list[str], out_dir: str) -> list[Outcome]:
    cli = shutil.which("wamrc")
    if not cli:
        return [Outcome(target, "wamr", f, cannot="wamrc (the WAMR AOT compiler) is not on PATH") for f in files]
    cmd = [cli, f"--target={device.arch or device.triple.split('-')[0]}"]
    if device.target:
        cmd.append(f"--cpu={device.target}")
    return _compile_each(target, "wamr", files, out_dir, "wamrc", lambda src, out: cmd + ["-o", out, src])


def precompile(devices: list[Device], files: list[str], out_dir: str, engines: list[str] | None,
               opt_level: str = "speed") -> list[Outcome]:
    """Compile `files` for every target of `devices` with `engines` (default: each device's engine columns)."""
    results: list[Outcome] = []
    for target, group in group_targets(devices).items():
        rep = group[0]
        names = tuple(d.name for d in group)
        wanted: list[str] = []
        for e in engines or [e for d in group for e in d.engines]:
            c = canonical(e)
            if c not in wanted:
                wanted.append(c)
        for engine in wanted:
            if engine == "wasmtime":
                outs = compile_wasmtime(target, rep.triple, files, out_dir, opt_level)
            elif engine == "wasmer":
                outs = compile_wasmer(target, rep.triple, files, out_dir)
            elif engine == "wamr":
                outs = compile_wamr(target, rep, files, out_dir)
            else:
                why = CANNOT.get(engine, "no ahead-of-time compiler known for this engine")
                outs = [Outcome(target, engine, f, cannot=why) for f in files]
            for o in outs:
                o.devices = names
            results.extend(outs)
    return results
