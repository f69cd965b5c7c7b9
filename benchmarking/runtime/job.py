"""A create's arguments checked once into a `Job` (create `data.args`, docs/protocol.md, "Creating
modules"); a bad one is an `ArgError` whose text names the key, and the module ends with reason
`error` before it waits for its turn."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarking import layouts
from common.schema import ModuleCreate


class ArgError(ValueError):
    """A create message argument that is wrong; the text names it."""


DEFAULT_LIMIT = 3600.0  # s: a module's whole time when neither its `limit` nor the setting `default_limit` says


def default_limit(settings: dict[str, Any] | None, where: str = "default_limit") -> float | None:
    """The runtime setting `default_limit`: the `limit` of a module whose create gives none, so a
    module that spins ends as `limit` and the queue goes on; `null` turns it off. ValueError names it."""
    v = (settings or {}).get("default_limit", DEFAULT_LIMIT)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ValueError(f"{where} must be a positive number of seconds (or null for none), got {v!r}")
    return float(v)


@dataclass
class Job:
    """One module being benchmarked: its settings and the handle a delete needs."""
    index: int
    file: str
    argvs: list[list[str]]  # module argv (without argv[0]); several = norepeat mode
    norepeat: bool
    repeat: int
    limit: float | None
    ilimit: float | None
    engines: list[str]
    env: dict[str, str]
    dirs: list[str]
    stdout: str | None
    args: dict[str, Any]
    layout: str = layouts.DEFAULT_LAYOUT  # which profile layouts to publish (layouts.LAYOUTS)
    warmup: int = 0  # runs per engine and argument list before the measured ones, discarded
    paths: list[str] = field(default_factory=list)  # `file` (each of `a:b` for interference) resolved by the file policy
    dirmode: str | None = None  # seeded: args.dirmode / args.scriptmode, resolved
    scriptmode: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    pid: int = 0
    limit_from: str = "args.limit"  # where `limit` came from (Runner: the runtime's default when the create gave none)
    started: float = field(default_factory=time.monotonic)  # reset when its turn comes (Runner._job)

    def run_limit(self) -> float | None:
        """Seconds the next run may take: its own `ilimit`, cut to what is left of `limit`."""
        left = None if self.limit is None else self.limit - (time.monotonic() - self.started)
        if left is None:
            return self.ilimit
        return left if self.ilimit is None else min(left, self.ilimit)

    def out_of_time(self) -> bool:
        return self.limit is not None and time.monotonic() - self.started >= self.limit

    def argv0(self, file: str | None = None) -> str:
        """The module's argv[0]: its file name."""
        return os.path.basename(file or self.file)


def str_list(v: Any, key: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ArgError(f"args.{key} must be a list of strings, got {v!r}")
    return list(v)


def parse_job(index: int, create: ModuleCreate, settings: dict[str, Any] | None = None) -> Job:
    """A checked create (common/schema.py: every key's type and range) as a Job; ArgError for what
    only this runtime decides: a module file, an engine, a profile layout. `settings` (the runtime's
    config) give the defaults of `profile` and `warmup`."""
    from benchmarking.engines.catalog import DEFAULT_ENGINE  # the worker's, never the supervisor's

    settings = settings or {}
    a = create.margs
    if not create.file:
        raise ArgError("the create message has no `file` (path of the module on this node)")
    argvs, norepeat = a.argv_lists()
    eng = DEFAULT_ENGINE if a.engine is None else a.engine
    eng_list = [eng] if isinstance(eng, str) else list(eng)
    if not eng_list or not all(eng_list):
        raise ArgError("args.engine must be an engine name or a non-empty list of names")
    layout = a.profile if a.profile is not None else settings.get("profile", layouts.DEFAULT_LAYOUT)
    if layout not in layouts.LAYOUTS:
        raise ArgError(f"args.profile must be one of {', '.join(layouts.LAYOUTS)} (which profile layouts to send), got {layout!r}")
    warmup = a.warmup if a.warmup is not None else settings.get("warmup", 0)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ArgError(f"setting warmup must be an integer >= 0, got {warmup!r}")
    return Job(index=index, file=create.file, argvs=argvs, norepeat=norepeat, repeat=a.repeat or 1, limit=a.limit,
               ilimit=a.ilimit, engines=eng_list, env=a.env_dict(), dirs=a.dir_list(), stdout=a.stdout,
               args=create.args or {}, layout=layout, warmup=warmup)
