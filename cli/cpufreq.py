"""Set the CPU frequency policy for benchmarking: governor, boost, underclocking (the seed's cpufreq).

Changes go through Linux sysfs (`/sys/devices/system/cpu/cpu*/cpufreq/`, boost in
`/sys/devices/system/cpu/cpufreq/boost` or `intel_pstate/no_turbo`); they need root. Without
cpufreq in sysfs (many VMs and containers) or without permission the script says so and exits 1.

Usage:
    manage.py cpufreq [options]
    manage.py cpufreq -h | --help

Options:
    --show               Print the current policy per CPU (the default when nothing is set).
    -g, --governor NAME  Scaling governor, e.g. performance, powersave, userspace.
    -b, --boost MODE     Turbo/boost: on or off.
    --max FREQ           Underclock: highest frequency (kHz, or with unit: 1.8GHz, 1800MHz).
    --min FREQ           Lowest frequency (same units).
    --reset              Frequencies back to the hardware range (cpuinfo_min/max_freq).
    --cpus LIST          CPUs to change, e.g. 0-3,6 (default: all).
    --sysfs DIR          Root of the cpu tree [default: /sys/devices/system/cpu].
"""
from __future__ import annotations

import glob
import os
import re
from typing import Any

from cli._api import CliError, guard, parse

SUMMARY = "Set CPU frequency policy."


def parse_freq(text: str) -> int:
    """kHz from '1800000', '1.8GHz', '1800MHz', '1800000kHz'."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ghz|mhz|khz)?\s*", text.lower())
    if not m:
        raise CliError(f"frequency {text!r} is not a number with an optional unit (GHz, MHz, kHz)")
    v = float(m.group(1)) * {"ghz": 1e6, "mhz": 1e3, "khz": 1, None: 1}[m.group(2)]
    return int(v)


def parse_cpus(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, sep, b = part.strip().partition("-")
        if not a.isdigit() or (sep and not b.isdigit()):
            raise CliError(f"--cpus: {part!r} is not a CPU number or range like 0-3")
        out.extend(range(int(a), int(b) + 1) if sep else [int(a)])
    return sorted(set(out))


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "-"


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except PermissionError:
        raise CliError(f"no permission to write {path} (run as root)") from None
    except OSError as e:
        raise CliError(f"cannot write {value!r} to {path}: {e.strerror}") from None


def policies(root: str, cpus: list[int] | None) -> dict[int, str]:
    """cpu number -> its cpufreq directory."""
    found: dict[int, str] = {}
    for d in glob.glob(os.path.join(root, "cpu[0-9]*", "cpufreq")):
        n = int(os.path.basename(os.path.dirname(d))[3:])
        if cpus is None or n in cpus:
            found[n] = d
    return dict(sorted(found.items()))


@guard("cpufreq")
def main(argv: list[str]) -> int:
    opts: dict[str, Any] = parse(__doc__ or "", "cpufreq", argv)
    root = opts["--sysfs"]
    cpus = parse_cpus(opts["--cpus"]) if opts["--cpus"] else None
    pol = policies(root, cpus)
    if not pol:
        where = f"CPUs {opts['--cpus']}" if cpus else "any CPU"
        raise CliError(f"no cpufreq interface for {where} under {root} (a VM or container without frequency "
                       "scaling, or the cpufreq driver is not loaded): nothing to set")
    changes = 0
    if opts["--governor"]:
        for n, d in pol.items():
            avail = _read(os.path.join(d, "scaling_available_governors")).split()
            if avail and opts["--governor"] not in avail:
                raise CliError(f"cpu{n}: governor {opts['--governor']!r} is not available (available: {', '.join(avail)})")
            _write(os.path.join(d, "scaling_governor"), opts["--governor"])
        changes += 1
    if opts["--reset"]:
        for d in pol.values():
            _write(os.path.join(d, "scaling_max_freq"), _read(os.path.join(d, "cpuinfo_max_freq")))
            _write(os.path.join(d, "scaling_min_freq"), _read(os.path.join(d, "cpuinfo_min_freq")))
        changes += 1
    for key, fname in (("--max", "scaling_max_freq"), ("--min", "scaling_min_freq")):
        if opts[key]:
            f = parse_freq(opts[key])
            for n, d in pol.items():
                lo, hi = _read(os.path.join(d, "cpuinfo_min_freq")), _read(os.path.join(d, "cpuinfo_max_freq"))
                if lo.isdigit() and hi.isdigit() and not int(lo) <= f <= int(hi):
                    raise CliError(f"cpu{n}: {key[2:]} frequency {f} kHz is outside the hardware range {lo}..{hi} kHz")
                _write(os.path.join(d, fname), str(f))
            changes += 1
    if opts["--boost"]:
        mode = opts["--boost"].lower()
        if mode not in ("on", "off"):
            raise CliError(f"--boost must be on or off, got {opts['--boost']!r}")
        boost = os.path.join(root, "cpufreq", "boost")
        no_turbo = os.path.join(root, "intel_pstate", "no_turbo")
        if os.path.exists(boost):
            _write(boost, "1" if mode == "on" else "0")
        elif os.path.exists(no_turbo):
            _write(no_turbo, "0" if mode == "on" else "1")
        else:
            raise CliError(f"this machine has no boost control ({boost} or {no_turbo})")
        changes += 1
    if opts["--show"] or not changes:
        print(f"{'cpu':<5} {'governor':<12} {'min kHz':>10} {'max kHz':>10} {'cur kHz':>10}")
        for n, d in pol.items():
            print(f"cpu{n:<2} {_read(os.path.join(d, 'scaling_governor')):<12} {_read(os.path.join(d, 'scaling_min_freq')):>10} "
                  f"{_read(os.path.join(d, 'scaling_max_freq')):>10} {_read(os.path.join(d, 'scaling_cur_freq')):>10}")
    return 0
