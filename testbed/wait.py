"""Polling for tests (and the chaos scenarios, which import it through chaos.base)."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_until(pred: Callable[[], Any], timeout: float = 20.0, what: str = "condition", interval: float = 0.05) -> Any:
    """Poll `pred()` until it returns something truthy and return that; TimeoutError naming `what`
    (and the last value or exception) otherwise. Exceptions count as transient: polling goes on."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # a process starting, a file appearing: keep polling
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g}s (last: {last!r})")
        time.sleep(interval)
