"""The cluster manifest: a TSV of devices (docs/protocol.md, "Configuration file").

The first non-comment line is the header. It must name the columns `Device, Model, CPU,
Target, Triple, Arch, SMT, Cgroup, Memory, Network, Storage` (any order, case-insensitive);
it may name `Type` (the original SilverLine's device kind: `linux`, `orchestrator`, ...; its
`status` needs it, so one manifest serves both CLIs); every other column is an engine, marked
`x` on the devices that have it. Blank lines and
lines starting with `#` are ignored. Errors name the file, line and column.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

COLUMNS: tuple[str, ...] = ("Device", "Model", "CPU", "Target", "Triple", "Arch", "SMT", "Cgroup", "Memory", "Network", "Storage")
OPTIONAL_COLUMNS: tuple[str, ...] = ("Type",)  # known columns that a manifest may leave out (never engines)

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class ManifestError(Exception):
    """The manifest file is unreadable or malformed; the text says where."""


@dataclass(frozen=True)
class Device:
    """One row of the manifest. Values are the cells as written (stripped)."""

    name: str
    model: str = ""
    cpu: str = ""
    target: str = ""
    triple: str = ""
    arch: str = ""
    smt: str = ""
    cgroup: str = ""
    memory: str = ""
    network: str = ""
    storage: str = ""
    type: str = ""  # the original's `Type` column (linux, orchestrator, ...); "" when the manifest has none
    engines: tuple[str, ...] = field(default_factory=tuple)  # engine columns marked `x`
    line: int = 0  # line number in the manifest (for messages)

    def fullname(self, domain: str = "") -> str:
        """Host name to connect to: `name` plus the configured domain, if any."""
        if not domain:
            return self.name
        return f"{self.name}.{domain.lstrip('.')}"

    def has_engine(self, engine: str) -> bool:
        return engine.lower() in (e.lower() for e in self.engines)

    def fields(self, domain: str = "", username: str = "") -> dict[str, str]:
        """Template fields: `{name}`, `{fullname}`, `{arch}`, `{cgroup}`, ... (one per column, lowercase)."""
        return {
            "name": self.name,
            "device": self.name,
            "fullname": self.fullname(domain),
            "domain": domain,
            "username": username,
            "model": self.model,
            "cpu": self.cpu,
            "target": self.target,
            "triple": self.triple,
            "arch": self.arch,
            "smt": self.smt,
            "cgroup": self.cgroup,
            "memory": self.memory,
            "network": self.network,
            "storage": self.storage,
            "type": self.type,
            "engines": ",".join(self.engines),
        }


def parse_manifest(text: str, path: str = "<manifest>") -> list[Device]:
    """Parse manifest text; `path` only names the source in errors."""
    header: list[str] | None = None
    index: dict[str, int] = {}
    engines: list[tuple[int, str]] = []
    devices: list[Device] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t")]
        if header is None:
            header = cells
            lowered: dict[str, int] = {}
            for col, name in enumerate(cells, start=1):
                if not name:
                    raise ManifestError(f"{path}: line {lineno}, column {col}: empty column name in the header")
                if name.lower() in lowered:
                    raise ManifestError(f"{path}: line {lineno}, column {col}: duplicate column {name!r} (first in column {lowered[name.lower()]})")
                lowered[name.lower()] = col
            missing = [c for c in COLUMNS if c.lower() not in lowered]
            if missing:
                hint = " (is the file tab-separated?)" if len(cells) == 1 else ""
                raise ManifestError(f"{path}: line {lineno}: header lacks column(s) {', '.join(missing)}{hint}; expected {', '.join(COLUMNS)} plus engine columns")
            index = {c: lowered[c.lower()] - 1 for c in COLUMNS + OPTIONAL_COLUMNS if c.lower() in lowered}
            required = set(index.values())
            engines = [(i, name) for i, name in enumerate(cells) if i not in required]
            continue
        if len(cells) > len(header):
            raise ManifestError(f"{path}: line {lineno}, column {len(header) + 1}: {len(cells)} cells but the header has {len(header)} columns")
        needed = max(index[c] for c in COLUMNS) + 1
        if len(cells) < needed:
            col = len(cells) + 1
            raise ManifestError(f"{path}: line {lineno}, column {col} ({header[col - 1]}): missing; the row has {len(cells)} cells, the header {len(header)}")
        cells += [""] * (len(header) - len(cells))  # trailing empty engine cells may be trimmed by editors
        name = cells[index["Device"]]
        dcol = index["Device"] + 1
        if not name:
            raise ManifestError(f"{path}: line {lineno}, column {dcol} (Device): empty device name")
        if not _NAME_RE.match(name):
            raise ManifestError(f"{path}: line {lineno}, column {dcol} (Device): bad device name {name!r} (use letters, digits, '_', '-', '.')")
        if name in seen:
            raise ManifestError(f"{path}: line {lineno}, column {dcol} (Device): duplicate device {name!r} (first on line {seen[name]})")
        seen[name] = lineno
        marked: list[str] = []
        for i, engine in engines:
            v = cells[i]
            if v.lower() == "x":
                marked.append(engine)
            elif v:
                raise ManifestError(f"{path}: line {lineno}, column {i + 1} ({engine}): engine cells must be 'x' or empty, got {v!r}")
        devices.append(Device(
            name=name,
            model=cells[index["Model"]],
            cpu=cells[index["CPU"]],
            target=cells[index["Target"]],
            triple=cells[index["Triple"]],
            arch=cells[index["Arch"]],
            smt=cells[index["SMT"]],
            cgroup=cells[index["Cgroup"]],
            memory=cells[index["Memory"]],
            network=cells[index["Network"]],
            storage=cells[index["Storage"]],
            type=cells[index["Type"]] if "Type" in index else "",
            engines=tuple(marked),
            line=lineno,
        ))
    if header is None:
        raise ManifestError(f"{path}: empty manifest (no header line with {', '.join(COLUMNS)})")
    return devices


def load_manifest(path: str) -> list[Device]:
    """Read and parse the manifest TSV at `path`."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError as e:
        raise ManifestError(f"manifest {path!r} does not exist (set `manifest` in config.json or pass -m)") from e
    except OSError as e:
        raise ManifestError(f"manifest {path!r}: cannot read: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ManifestError(f"manifest {path!r}: not UTF-8 text: {e}") from e
    return parse_manifest(text, path)


def select_devices(devices: list[Device], names: list[str] | None) -> list[Device]:
    """The devices named in `names` (comma-separated entries allowed), in manifest order; all if empty."""
    if not names:
        return list(devices)
    wanted: list[str] = []
    for n in names:
        wanted.extend(x.strip() for x in n.split(",") if x.strip())
    known = {d.name for d in devices}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ManifestError(f"unknown device(s) {', '.join(unknown)}; the manifest has {', '.join(sorted(known)) or 'none'}")
    want = set(wanted)
    return [d for d in devices if d.name in want]
