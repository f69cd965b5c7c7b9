"""The runtime registry: lookup by name and alias."""
from __future__ import annotations

import pytest

import runtimes


def test_registry_lookup_and_aliases() -> None:
    assert runtimes.get("runtime-linux").name == "linux"
    assert runtimes.get("test/echo").short_name == "echo"
    with pytest.raises(runtimes.UnknownRuntime, match="known runtimes"):
        runtimes.get("zzz")
