"""`h`: the orchestrator's state machine in process over a real SQLite store (the Harness of
test_core.py), for the unit tests of tests/orchestrator/."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.orchestrator.test_core import Harness


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(str(tmp_path / "orch.db"))
    yield harness
    harness.store.close()
