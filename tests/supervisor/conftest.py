"""Fixtures of the supervisor's unit tests."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.supervisor.fakes import Rig


@pytest.fixture
def rig() -> Iterator[Rig]:
    """Two workers on real rings behind a real Router and ModuleControl (see fakes.Rig)."""
    r = Rig(2)
    try:
        yield r
    finally:
        r.close()
