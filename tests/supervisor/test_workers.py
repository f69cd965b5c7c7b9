"""The worker state machine driven through a fake `ProcessOps` (supervisord's dummy options): every
edge of the restart policy without forking. The same edges with real processes: test_node.py."""
from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from common.exit_status import EXIT_BOOT_ERROR
from supervisor.states import StateError, WorkerState
from supervisor.workers import Tick, Worker
from tests.supervisor.fakes import FakeOps, launch, make_worker


@pytest.fixture(autouse=True)
def no_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any) -> None:
        raise AssertionError("a state-machine unit test must not fork or signal")

    monkeypatch.setattr(os, "fork", refuse)
    monkeypatch.setattr(os, "kill", refuse)
    monkeypatch.setattr(os, "waitpid", refuse)


def make(ops: FakeOps, **policy: Any) -> Worker:
    return make_worker(0, ops, **policy)


LAUNCH = launch("n.echo0")


def start(w: Worker, now: float) -> int:
    w.start(LAUNCH, now)
    assert w.state is WorkerState.STARTING and w.pid is not None
    return w.pid


def run_up(w: Worker, now: float) -> None:
    """Start, first keepalive, startsecs pass: RUNNING."""
    start(w, now)
    w.booted = True
    assert w.tick(now + w.policy.startsecs) is Tick.RUNNING
    assert w.state is WorkerState.RUNNING


def test_crash_loop_doubles_the_delay_then_goes_fatal() -> None:
    ops = FakeOps()
    w = make(ops, start_retries=4, backoff=0.5, startsecs=1.0)
    now, delays = 100.0, []
    for attempt in range(3):
        start(w, now)
        assert w.died(1, now + 0.1) is WorkerState.BACKOFF
        delays.append(w.restart_at - (now + 0.1))
        assert w.tick(w.restart_at - 0.01) is Tick.NOTHING  # not before the delay
        now = w.restart_at
        assert w.tick(now) is Tick.RESTART
    assert delays == [0.5, 1.0, 2.0]
    start(w, now)
    assert w.died(1, now + 0.1) is WorkerState.FATAL
    assert w.failures == 4 and len(ops.spawned) == 4
    assert w.tick(now + 1000) is Tick.NOTHING  # FATAL stays: no restart


def test_backoff_delay_is_capped() -> None:
    w = make(FakeOps(), start_retries=100, backoff=10.0)
    for _ in range(5):
        start(w, 0.0)
        w.died(1, 0.0)
    assert w.restart_at == 30.0


def test_a_crash_after_startsecs_resets_the_count() -> None:
    ops = FakeOps()
    w = make(ops, start_retries=3, backoff=0.5, startsecs=1.0)
    start(w, 0.0)
    w.died(1, 0.2)  # failed start 1
    start(w, w.restart_at)
    w.died(1, w.restart_at + 0.2)  # failed start 2: one more would be FATAL
    assert w.failures == 2
    run_up(w, 10.0)
    assert w.failures == 0
    assert w.died(-9, 20.0) is WorkerState.BACKOFF
    assert w.restart_at == 20.5  # the base delay, not a doubled one
    start(w, w.restart_at)
    assert w.died(1, w.restart_at + 0.1) is WorkerState.BACKOFF  # counting starts again at 1
    assert w.failures == 1


def test_not_running_before_the_first_keepalive() -> None:
    w = make(FakeOps(), startsecs=1.0)
    start(w, 0.0)
    assert w.tick(5.0) is Tick.NOTHING and w.state is WorkerState.STARTING
    w.booted = True
    assert w.tick(5.0) is Tick.RUNNING


def test_boot_error_goes_fatal_at_once() -> None:
    ops = FakeOps()
    w = make(ops, start_retries=5, backoff=0.1)
    start(w, 0.0)
    assert w.died(EXIT_BOOT_ERROR, 0.1) is WorkerState.FATAL  # not BACKOFF: no retries for a boot error
    assert w.next_deadline() is None
    assert w.tick(1000.0) is Tick.NOTHING and len(ops.spawned) == 1  # no respawn loop
    assert w.request_stop(1000.0, "SIGTERM") is False and w.state is WorkerState.STOPPED


def test_boot_error_after_failed_starts_is_fatal_too() -> None:
    w = make(FakeOps(), start_retries=5, backoff=0.1)
    start(w, 0.0)
    assert w.died(1, 0.1) is WorkerState.BACKOFF  # an ordinary failed start: retried
    start(w, w.restart_at)
    assert w.died(EXIT_BOOT_ERROR, w.restart_at + 0.1) is WorkerState.FATAL


def test_exit_code_of_boot_error_from_a_running_worker_is_a_crash() -> None:
    w = make(FakeOps(), backoff=0.5)
    run_up(w, 0.0)
    assert w.died(EXIT_BOOT_ERROR, 5.0) is WorkerState.BACKOFF  # it had booted: the normal restart
    assert w.restart_at == 5.5


def test_stop_during_backoff_stops_without_restart() -> None:
    ops = FakeOps()
    w = make(ops, backoff=1.0)
    start(w, 0.0)
    w.died(1, 0.1)
    assert w.request_stop(0.2, "SIGTERM") is False  # nothing to tell: no process
    assert w.state is WorkerState.STOPPED
    assert w.tick(100.0) is Tick.NOTHING and len(ops.spawned) == 1
    with pytest.raises(StateError):
        w.change_state(WorkerState.RUNNING)


def test_stop_of_fatal_worker() -> None:
    w = make(FakeOps(), start_retries=1)
    start(w, 0.0)
    w.died(1, 0.1)
    assert w.state is WorkerState.FATAL
    assert w.request_stop(1.0, "SIGTERM") is False and w.state is WorkerState.STOPPED


def test_sigterm_then_sigkill_at_the_stop_deadline() -> None:
    ops = FakeOps()
    w = make(ops, stop_timeout=5.0)
    run_up(w, 0.0)
    pid = w.pid
    assert w.request_stop(10.0, "SIGTERM") is True and w.state is WorkerState.STOPPING
    w.tick(14.9)
    assert ops.kills == []
    w.tick(15.0)
    w.tick(15.5)
    assert ops.kills == [(pid, signal.SIGKILL)]  # once
    assert w.died(-9, 15.6) is WorkerState.STOPPED
    assert w.tick(100.0) is Tick.NOTHING


def test_a_worker_that_dies_while_starting_during_stop_is_stopped() -> None:
    w = make(FakeOps())
    start(w, 0.0)
    assert w.request_stop(0.1, "SIGTERM") is True
    assert w.died(0, 0.2) is WorkerState.STOPPED


def test_heartbeat_sigabrt_then_sigkill_once() -> None:
    ops = FakeOps()
    w = make(ops, worker_timeout=3.0, abort_grace=2.0)
    run_up(w, 0.0)
    pid = w.pid
    w.last_heard = 1.0
    w.tick(3.9)
    assert ops.kills == []
    w.tick(4.0)
    assert ops.kills == [(pid, signal.SIGABRT)]
    w.tick(5.9)
    w.tick(6.0)
    w.tick(60.0)
    assert ops.kills == [(pid, signal.SIGABRT), (pid, signal.SIGKILL)]
    assert w.died(-9, 60.1) is WorkerState.BACKOFF  # then the normal restart policy
    start(w, w.restart_at)
    assert w.abort_sent is None and not w.kill_sent


def test_spawn_failure_is_fatal_at_once() -> None:
    ops = FakeOps()
    ops.fail_spawn = True
    w = make(ops)
    with pytest.raises(OSError):
        w.start(LAUNCH, 0.0)
    w.start_failed("spawn failed")
    assert w.state is WorkerState.FATAL and w.pid is None


def test_next_deadline_follows_the_state() -> None:
    w = make(FakeOps(), startsecs=1.0, backoff=0.5, stop_timeout=5.0)
    assert w.next_deadline() is None
    start(w, 10.0)
    assert w.next_deadline() is None  # not booted: its first keepalive (an event) comes first, nothing is timed
    w.booted = True
    assert w.next_deadline() == 11.0
    w.died(1, 10.2)
    assert w.next_deadline() == 10.7
    start(w, 10.7)
    w.request_stop(11.0, "stop")
    assert w.next_deadline() == 16.0
    w.kill()
    assert w.next_deadline() is None  # SIGKILLed: its SIGCHLD is next, not a busy loop on a past deadline


def test_next_deadline_of_the_heartbeat_and_of_a_stopped_backoff() -> None:
    w = make(FakeOps(), worker_timeout=3.0, abort_grace=2.0, backoff=0.5)
    run_up(w, 10.0)
    w.last_heard = 12.0
    assert w.next_deadline() == 15.0  # silent for worker_timeout: SIGABRT
    w.tick(15.0)
    assert w.abort_sent == 15.0 and w.next_deadline() == 17.0  # then SIGKILL after the grace
    w.tick(17.0)
    assert w.kill_sent and w.next_deadline() is None
    w.died(-9, 17.1)
    assert w.state is WorkerState.BACKOFF and w.next_deadline() == 17.6
    w.request_stop(17.2, "stop")  # BACKOFF -> STOPPED: no restart is due any more
    assert w.next_deadline() is None
    w2 = make(FakeOps(), backoff=0.5)
    run_up(w2, 0.0)
    assert w2.next_deadline() is None  # RUNNING without --worker-timeout: nothing timed
