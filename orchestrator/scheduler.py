"""Where a module without `parent` goes: an alive runtime whose apis cover the module's,
one with a free slot before a full one, then least loaded first (running + queued there),
ties broken round-robin.

Runtimes are few (tens) and modules many (100k queued), so one pass over the runtimes
is the whole decision: O(runtimes), independent of queue depth.
"""
from __future__ import annotations

from typing import Iterable

from orchestrator.model import RUNTIME, Node


class Scheduler:
    """Picks a runtime; remembers picks so that equally loaded runtimes take turns."""

    def __init__(self) -> None:
        self._stamp = 0

    def pick(self, runtimes: Iterable[Node], apis: frozenset[str]) -> Node | None:
        best: Node | None = None
        for rt in runtimes:
            if rt.kind != RUNTIME or not rt.alive or not apis <= rt.apis:
                continue
            if best is None or (not rt.has_room(), rt.load(), rt.last_pick) < (not best.has_room(), best.load(), best.last_pick):
                best = rt
        if best is not None:
            self._stamp += 1
            best.last_pick = self._stamp
        return best
