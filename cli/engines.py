"""List the benchmark engines of this node: what each is, its package and version, whether it is
enabled here, and its conformance verdict; `--check` runs the conformance suite.

Usage:
    manage.py engines [--json] [--available] [--cfg FILE]
    manage.py engines --check [--json] [<engine>...]
    manage.py engines -h | --help

Options:
    --json       One JSON object: name -> {"kind", "package", "version", "enabled", "conformance", ...}.
    --available  Only the engines that are enabled here.
    --cfg FILE   The node's config.json (default: $SL_CONFIG, else ./config.json): native, command-line
                 and unsandboxed engines are enabled only by its `enable_engines` (docs/security.md).
    --check      Run the conformance suite (every case on every named engine, default all installed;
                 stdout, files and exit status must equal wasmtime-j's), store the verdicts, and
                 exit 1 when an engine fails. Takes a minute or two.

Run `manage.py engines --check` once after `make env` (docs/benchmarking.md has more).

Kinds: interpreter, baseline (a fast single-pass compiler), optimizing (JIT), aot, native,
cli-external (a program on PATH the project does not install; untested templates).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from cli._api import CliError, guard, parse
from common.jsonfile import JsonFileError, read_object

SUMMARY = "List the benchmark engines of this node (kind, package, version, enabled, conformance)."


def node_gate(path: str | None) -> Any:
    """The engine gate of the node whose config.json is `path` (its `benchmarking` runtime section)."""
    from benchmarking.engines.gate import EngineGate

    path = path or os.environ.get("SL_CONFIG") or ("config.json" if os.path.exists("config.json") else None)
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = read_object(path, "a node's config (a JSON object)")
        except JsonFileError as e:
            raise CliError(f"--cfg {e}") from None
    section = (raw.get("runtimes") or {}).get("benchmarking")
    try:
        return EngineGate(section if isinstance(section, dict) else {})
    except ValueError as e:
        raise CliError(f"{path}: {e}") from None


def engine_table(only_available: bool = False, gate: Any = None) -> dict[str, dict[str, Any]]:
    from benchmarking.engines import launch as engines
    from benchmarking.engines.verdicts import cached_verdict

    out: dict[str, dict[str, Any]] = {}
    for name, e in engines.ENGINES.items():
        installed, detail = engines.availability(name, conformance=False)
        ok, why = engines.availability(name) if installed else (False, detail)
        if ok and gate is not None and not gate.enabled(name):
            ok, why = False, "off on this node (opt-in: `enable_engines` in config.json, docs/security.md)"
        if only_available and not ok:
            continue
        ver = engines.version(name) if installed else None
        verdict = cached_verdict(name, ver) if installed else None
        conf = "n/a" if not installed else "unchecked" if verdict is None else "pass" if verdict["ok"] else "fail"
        out[name] = {"kind": e.kind, "family": e.family, "on_by_default": e.on, "package": e.package, "version": ver, "installed": installed,
                     "available": ok, "enabled": ok, "conformance": conf,
                     "conformance_failures": (verdict or {}).get("failures", {}),
                     "aliases": list(e.aliases), "sandboxed": e.sandboxed, "phases": e.phases, "aot": e.aot,
                     "tested": e.tested, "description": e.description, "detail": detail if ok else why}
    return out


def _print_table(table: dict[str, dict[str, Any]]) -> None:
    width = max([len(n) for n in table] + [6])
    print(f"{'engine':<{width}}  {'kind':<12}  {'version':<22}  {'enabled':<7}  {'conformance':<11}  package / why not")
    for name, e in table.items():
        ver = (e["version"] or "-")[:22]
        tail = e["package"] if e["available"] else f"{e['package']}: {e['detail']}"
        alias = f" (alias {', '.join(e['aliases'])})" if e["aliases"] else ""
        print(f"{name:<{width}}  {e['kind']:<12}  {ver:<22}  {'yes' if e['available'] else 'no':<7}  "
              f"{e['conformance']:<11}  {tail}{alias}")


def _check(names: list[str], as_json: bool) -> int:
    from benchmarking.engines import conformance
    from benchmarking.engines import launch as engines

    unknown = [n for n in names if engines.resolve(n) not in engines.ENGINES]
    if unknown:
        raise CliError(f"unknown engine {unknown[0]!r} (known: {', '.join(engines.all_names())})")

    def progress(name: str, v: dict[str, Any]) -> None:
        if not as_json:
            state = "pass" if v["ok"] else "FAIL"
            print(f"{name:<15} {state}  {v.get('seconds', 0):>6.1f} s  {v['why']}", flush=True)

    try:
        verdicts = conformance.check(names or None, progress=progress)
    except (FileNotFoundError, engines.EngineNotAvailable) as e:
        raise CliError(str(e)) from None
    if as_json:
        print(json.dumps(verdicts))
    failed = [n for n, v in verdicts.items() if not v["ok"]]
    if failed and not as_json:
        print(f"{len(failed)} of {len(verdicts)} engines failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


@guard("engines")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "engines", argv)
    if opts["--check"]:
        return _check(list(opts["<engine>"]), bool(opts["--json"]))
    table = engine_table(bool(opts["--available"]), node_gate(opts["--cfg"]))
    if opts["--json"]:
        print(json.dumps(table))
        return 0
    _print_table(table)
    return 0
