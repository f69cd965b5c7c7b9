"""What a benchmark run's numbers depend on besides the program: the CPU set, governor and
frequency of each CPU, the SMT (hyper-threading) state of the set, and the load average.

Read from sysfs/procfs when the module starts (`measurement_env`); a value the machine does not
expose (a VM without cpufreq) is None rather than a guess. Stored with each cell (the profile's
`env` and the module's `exited` message) so a campaign can be checked for drift later.
"""
from __future__ import annotations

import os
from typing import Any

SYSFS_CPU = "/sys/devices/system/cpu"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _cpu_list(text: str | None) -> list[int] | None:
    """`0-1,4` -> [0, 1, 4]."""
    if not text:
        return None
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            return None
    return out


def measurement_env(cpus: list[int], sysfs: str = SYSFS_CPU) -> dict[str, Any]:
    """The facts of the CPUs `cpus` now: {cpus, governor, freq_khz, smt_active, siblings, loadavg}."""
    governor: dict[str, str | None] = {}
    freq: dict[str, int | None] = {}
    siblings: dict[str, list[int] | None] = {}
    for c in cpus:
        base = os.path.join(sysfs, f"cpu{c}")
        governor[str(c)] = _read(os.path.join(base, "cpufreq", "scaling_governor"))
        f = _read(os.path.join(base, "cpufreq", "scaling_cur_freq"))
        freq[str(c)] = int(f) if f and f.isdigit() else None
        siblings[str(c)] = _cpu_list(_read(os.path.join(base, "topology", "thread_siblings_list")))
    smt = _read(os.path.join(sysfs, "smt", "active"))
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    # a sibling of a CPU of the set that is outside the set runs other work on the same core
    shared = sorted({s for sl in siblings.values() if sl for s in sl} - set(cpus))
    return {"cpus": list(cpus), "governor": governor, "freq_khz": freq, "siblings": siblings,
            "smt_active": None if smt is None else smt == "1", "siblings_outside_set": shared, "loadavg": load}
