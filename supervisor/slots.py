"""The supervisor's module records and a worker's module slots: a leaf (it imports nothing of the
supervisor), shared by workers.py (each Worker holds its slots), modules.py (creates, deletes,
exited reports) and router.py (channel access checks, log prefixes, profile topics)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from common.schema import Grant, ModuleCreate


@dataclass
class ModuleRecord:
    """The supervisor's view of a module: enough to route, report and re-create it."""

    index: int
    uuid: str
    name: str
    create: ModuleCreate  # the checked create, as the worker gets it
    grants: list[Grant]
    pending_create: bool = False  # create not delivered yet (worker was down): sent at next spawn
    deleting: bool = False


@dataclass
class ModuleSlots:
    """A worker's module slots: index (the h1 of its IPC messages) -> record, and uuid -> index."""

    size: int
    by_index: dict[int, ModuleRecord] = field(default_factory=dict)
    by_uuid: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.by_index)

    def __iter__(self) -> Iterator[ModuleRecord]:
        """The records in slot order (a copy: callers pop while they iterate)."""
        return iter(sorted(self.by_index.values(), key=lambda r: r.index))

    def get(self, index: int) -> ModuleRecord | None:
        return self.by_index.get(index)

    def find(self, uuid: str) -> ModuleRecord | None:
        index = self.by_uuid.get(uuid)
        return None if index is None else self.by_index[index]

    def free_index(self) -> int | None:
        return next((i for i in range(self.size) if i not in self.by_index), None)

    def add(self, rec: ModuleRecord) -> None:
        self.by_index[rec.index] = rec
        self.by_uuid[rec.uuid] = rec.index

    def pop(self, index: int) -> ModuleRecord | None:
        rec = self.by_index.pop(index, None)
        if rec is not None:
            self.by_uuid.pop(rec.uuid, None)
        return rec
