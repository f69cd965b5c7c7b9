"""Ring implementations for the ring tests: pure Python and the C core (ipc/_ringc.c), and the
mixed pairs (a producer of one, a consumer of the other) over the same shared bytes."""
from __future__ import annotations

import os

import pytest

from ipc import ring

IMPLS = ["python", "c"]
PAIRS = [("python", "python"), ("c", "c"), ("c", "python"), ("python", "c")]


def need_impl(impl: str) -> None:
    """The C core must be built (`make env`); only an explicit SILVERLINE_RING=python skips its tests."""
    if impl == "c" and not ring.c_available():
        if os.environ.get(ring.ENV_IMPL, "").strip().lower() == "python":
            pytest.skip("SILVERLINE_RING=python: the C ring is switched off")
        pytest.fail(f"the C ring is not built: {ring.C_UNAVAILABLE}")


@pytest.fixture(params=PAIRS, ids=["py-py", "c-c", "c-py", "py-c"])
def pair(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(producer implementation, consumer implementation)."""
    prod, cons = request.param
    need_impl(prod)
    need_impl(cons)
    return prod, cons


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> str:
    need_impl(request.param)
    return str(request.param)
