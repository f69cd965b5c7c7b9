"""The worker states: the allowed edges and the backoff delays (the machine itself: test_workers.py)."""
from __future__ import annotations

import pytest

from supervisor.states import StateError, WorkerState, backoff_delay, check_edge


def test_state_edges() -> None:
    check_edge(WorkerState.STOPPED, WorkerState.STARTING)
    check_edge(WorkerState.STARTING, WorkerState.FATAL)
    check_edge(WorkerState.BACKOFF, WorkerState.STARTING)
    for bad in ((WorkerState.FATAL, WorkerState.STARTING), (WorkerState.RUNNING, WorkerState.FATAL), (WorkerState.STOPPED, WorkerState.RUNNING)):
        with pytest.raises(StateError):
            check_edge(*bad)


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_delay(i, 0.5) for i in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff_delay(30, 1.0) == 30.0
