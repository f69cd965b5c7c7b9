"""Where a module without `parent` goes: an alive runtime of the module's kind whose apis cover
the module's (by our names or the original's: `Node.provides`, common/apis.py), one with a free slot before a full one, then least loaded first (running + queued
there), ties broken round-robin.

Kinds: a runtime is a *benchmarking* runtime when it registers a benchmarking API (`benchmarking`,
or a `profile:` API other than `profile:deployed`, as the original's benchmarking runtimes do);
every other runtime runs *plain* modules. A module is a benchmark when it asks for a benchmarking
API or carries benchmarking args (`repeat`, `engine`, ...). A plain module never lands on a
benchmarking runtime (it would be run as a measurement and its output dropped), a benchmark never
on a plain one (it would run once, unmeasured). `parent` given explicitly is not second-guessed.

The index (ours, issue #26): runtimes are grouped by (kind, provided apis); each group keeps a
heap ordered by (full, load, last pick, registration order), the same order the one-pass scan
(`scan_pick`, kept as the reference the tests and bench/fleet.py compare with) uses. A create looks
only at the groups that can run it (a handful: fleets have few distinct api sets) and takes each
group's top. The orchestrator calls `touch(rt)` whenever a runtime's state, load or registration
changes; stale heap entries are dropped when they surface, so a decision costs O(groups + log n)
instead of O(runtimes).
"""
from __future__ import annotations

import heapq
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


def scan_pick(runtimes: Iterable[Node], apis: frozenset[str], kind: str | None = None) -> Node | None:
    """The reference placement: one pass over every runtime (what every create did before the index).
    Does not stamp the pick; `Scheduler.pick` must answer the same runtime."""
    best: Node | None = None
    for rt in runtimes:
        if rt.kind != RUNTIME or not rt.alive or not apis <= rt.provides:
            continue
        if kind is not None and runtime_kind(rt.apis) != kind:
            continue
        if best is None or (not rt.has_room(), rt.load(), rt.last_pick) < (not best.has_room(), best.load(), best.last_pick):
            best = rt
    return best


Group = tuple[str, frozenset[str]]  # (kind, provides)


class Scheduler:
    """Picks a runtime from the index; remembers picks so that equally loaded runtimes take turns."""

    def __init__(self) -> None:
        self._stamp = 0
        self.reset()

    def reset(self) -> None:
        """Forget every runtime (the orchestrator reloaded its state); `touch` them again. Picks keep their stamps."""
        self._version = 0
        self._heaps: dict[Group, list[tuple[bool, int, int, int, int, str]]] = {}
        self._live: dict[Group, int] = {}  # runtimes with a current entry, per group
        self._where: dict[str, tuple[Group, int]] = {}  # uuid -> (group, version) of its current entry
        self._node: dict[str, Node] = {}  # uuid -> the Node object of its current entry
        self._touched: dict[str, Node] = {}
        self._matches: dict[tuple[frozenset[str], str | None], list[Group]] = {}
        self._kinds: dict[frozenset[str], str] = {}

    def touch(self, rt: Node) -> None:
        """`rt` (a new registration, or one whose status, modules or queue changed) is re-keyed before the next pick."""
        self._touched[rt.uuid] = rt

    def _kind(self, apis: frozenset[str]) -> str:
        k = self._kinds.get(apis)
        if k is None:
            if len(self._kinds) > 10000:
                self._kinds.clear()
            k = self._kinds[apis] = runtime_kind(apis)
        return k

    def _apply(self) -> None:
        touched, self._touched = self._touched, {}
        for uuid, rt in touched.items():
            old = self._where.pop(uuid, None)
            self._node.pop(uuid, None)
            if old is not None:
                self._live[old[0]] -= 1
            if rt.kind != RUNTIME or not rt.alive:
                continue
            g = (self._kind(rt.apis), rt.provides)
            heap = self._heaps.get(g)
            if heap is None:
                heap = self._heaps[g] = []
                self._live[g] = 0
                self._matches.clear()
            self._version += 1
            heapq.heappush(heap, (not rt.has_room(), rt.load(), rt.last_pick, rt.order, self._version, uuid))
            self._where[uuid] = (g, self._version)
            self._node[uuid] = rt
            self._live[g] += 1

    def _top(self, g: Group) -> tuple[bool, int, int, int, int, str] | None:
        heap = self._heaps[g]
        if len(heap) > 64 and len(heap) > 4 * self._live[g]:  # mostly stale: rebuild
            heap[:] = [e for e in heap if self._where.get(e[5]) == (g, e[4])]
            heapq.heapify(heap)
        while heap:
            e = heap[0]
            if self._where.get(e[5]) == (g, e[4]):
                return e
            heapq.heappop(heap)
        return None

    def pick(self, apis: frozenset[str], kind: str | None = None) -> Node | None:
        """The runtime for a module needing `apis`, of `kind` (PLAIN/BENCHMARK; None: any)."""
        self._apply()
        groups = self._matches.get((apis, kind))
        if groups is None:
            if len(self._matches) > 4096:
                self._matches.clear()
            groups = self._matches[(apis, kind)] = [g for g in self._heaps
                                                    if (kind is None or g[0] == kind) and apis <= g[1]]
        best: tuple[bool, int, int, int, int, str] | None = None
        for g in groups:
            e = self._top(g)
            if e is not None and (best is None or e[:4] < best[:4]):
                best = e
        if best is None:
            return None
        rt = self._node[best[5]]
        self._stamp += 1
        rt.last_pick = self._stamp
        self.touch(rt)
        return rt
