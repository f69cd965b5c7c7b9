"""Where a module without `parent` goes: an alive runtime of the module's kind whose apis cover
the module's (by our names or the original's: `Node.provides`, common/apis.py), one with a free slot before a full one, then least loaded first (running + queued
there), ties broken round-robin.

Kinds: a runtime is a *benchmarking* runtime when it registers a benchmarking API (`benchmarking`,
or a `profile:` API other than `profile:deployed`, as the original's benchmarking runtimes do);
every other runtime runs *plain* modules. A module is a benchmark when it asks for a benchmarking
API or carries benchmarking args (`repeat`, `engine`, ...). A plain module never lands on a
benchmarking runtime (it would be run as a measurement and its output dropped), a benchmark never
on a plain one (it would run once, unmeasured). `parent` given explicitly is not second-guessed.

Runtimes are few (tens) and modules many (100k queued), so one pass over the runtimes
is the whole decision: O(runtimes), independent of queue depth.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from orchestrator.model import RUNTIME, Node

PLAIN = "plain"
BENCHMARK = "benchmark"
# args that only benchmarking runtimes read (docs/protocol.md, "Creating modules")
BENCHMARK_ARGS = ("repeat", "engine", "ilimit", "max_seed", "dirmode", "scriptmode")
NOT_BENCHMARKING_PROFILES = frozenset({"profile:deployed"})  # the linux runtime's own profile


def is_benchmarking_api(api: str) -> bool:
    return api == "benchmarking" or api.startswith("benchmarking/") or (
        api.startswith("profile:") and api not in NOT_BENCHMARKING_PROFILES)


def runtime_kind(apis: Iterable[str]) -> str:
    return BENCHMARK if any(is_benchmarking_api(a) for a in apis) else PLAIN


def module_kind(apis: Iterable[str], args: Mapping[str, Any] | None) -> str:
    if any(is_benchmarking_api(a) for a in apis):
        return BENCHMARK
    if args and any(args.get(k) not in (None, 0, "", []) for k in BENCHMARK_ARGS):
        return BENCHMARK
    return PLAIN


class Scheduler:
    """Picks a runtime; remembers picks so that equally loaded runtimes take turns."""

    def __init__(self) -> None:
        self._stamp = 0

    def pick(self, runtimes: Iterable[Node], apis: frozenset[str], kind: str | None = None) -> Node | None:
        """The runtime for a module needing `apis`, of `kind` (PLAIN/BENCHMARK; None: any)."""
        best: Node | None = None
        for rt in runtimes:
            if rt.kind != RUNTIME or not rt.alive or not apis <= rt.provides:
                continue
            if kind is not None and runtime_kind(rt.apis) != kind:
                continue
            if best is None or (not rt.has_room(), rt.load(), rt.last_pick) < (not best.has_room(), best.load(), best.last_pick):
                best = rt
        if best is not None:
            self._stamp += 1
            best.last_pick = self._stamp
        return best
