"""The one loader of collected benchmark records, as dicts with `type`, `data`, `module` and
`runtime` (the collector's record of each, as it knew them when it stored the message) and
`received`. A directory with the collector's results store (`DIR/results.sqlite`,
benchmarking/resultdb.py) is read from the store, one record per stored result, plus the files
the store does not name (written before the store existed); any other directory from its files (`DIR/<date>/<runtime>/<module>.<uuid>.<type>.json`, what older
collectors and the original write). Report, the Pitot export and the tidy table read through here.
"""
from __future__ import annotations

import glob
import json
import os
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from benchmarking.analysis import AnalysisError
from benchmarking.resultdb import ResultDB

Record = dict[str, Any]


@dataclass
class Loaded:
    records: list[Record] = field(default_factory=list)
    bad: int = 0  # files that could not be read or hold no decoded data (kept raw by the collector)
    stores: list[str] = field(default_factory=list)  # the results stores read (the other dirs: files)


def check_dirs(dirs: list[str]) -> list[str]:
    """The collector directories named on the command line (default `data`), each checked."""
    dirs = dirs or ["data"]
    for d in dirs:
        if not os.path.isdir(d):
            raise AnalysisError(f"{d!r} is not a directory (the collector writes into `data/` by default: `make profile`)")
    return dirs


def read(dirs: list[str]) -> Loaded:
    """Every record under `dirs`: a directory's results store when it has one, else its files in
    file-name order (date folders first)."""
    out = Loaded()
    for d in dirs:
        try:
            db = ResultDB.find(d)
        except (OSError, sqlite3.Error) as e:
            raise AnalysisError(f"{d}: the results store cannot be read: {e}") from None
        if db is None:
            _read_files(d, out)
            continue
        try:
            for rec in db.records():
                _add(rec, out)
            in_store = {str(f) for (f,) in db.conn.execute("SELECT file FROM results WHERE file IS NOT NULL")}
        except sqlite3.Error as e:
            raise AnalysisError(f"{db.path}: the results store cannot be read: {e}") from None
        finally:
            db.close()
        out.stores.append(db.path)
        _read_files(d, out, skip=in_store)  # files from before the store (a collector upgraded in place)
    return out


def _add(rec: Any, out: Loaded) -> None:
    if not isinstance(rec, dict) or "data" not in rec:
        out.bad += 1  # undecodable payload kept raw by the collector
        return
    if not isinstance(rec.get("module"), dict):
        rec["module"] = {}
    if not isinstance(rec.get("runtime"), dict):
        rec["runtime"] = {}
    out.records.append(rec)


def _read_files(d: str, out: Loaded, skip: set[str] | None = None) -> None:
    """The records of the files under `d`, but those (relative to `d`) in `skip`."""
    for path in sorted(glob.glob(os.path.join(d, "**", "*.json"), recursive=True)):
        if os.path.basename(path) == "runtimes.json":
            continue  # the original collector's index of runtimes, not a record
        if skip and os.path.relpath(path, d) in skip:
            continue
        try:
            with open(path) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            out.bad += 1
            continue
        _add(rec, out)


def margs(rec: Record) -> dict[str, Any]:
    """The module's `args` (engine, argv, campaign, cell, ...)."""
    a = (rec.get("module") or {}).get("args")
    return a if isinstance(a, dict) else {}


def of_campaign(records: list[Record], campaign: str | None) -> list[Record]:
    return records if campaign is None else [r for r in records if margs(r).get("campaign") == campaign]


def latest_runtimes(records: list[Record]) -> dict[str, tuple[float, dict[str, Any]]]:
    """Runtime uuid -> (when, runtime record) of the latest registration the collector saw: the
    record stored with the most recently received message that has platform facts (else the
    latest). The collector keeps a runtime's latest registration, so after `manage.py configure`
    and a node restart the newer files carry the new platform."""
    best: dict[str, tuple[bool, float, dict[str, Any]]] = {}
    for rec in records:
        rt = rec.get("runtime") or {}
        uuid = str(rt.get("uuid") or "")
        if not uuid:
            continue
        plat = rt.get("platform")
        has = bool(isinstance(plat, dict) and plat.get("cpu"))
        key = (has, float(rec.get("received") or 0.0), rt)
        if uuid not in best or key[:2] >= best[uuid][:2]:
            best[uuid] = key
    return {u: (v[1], v[2]) for u, v in best.items()}
