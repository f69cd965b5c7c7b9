"""Stale-IPC cleanup treats a zombie and a reused pid as dead.

Regression: a node restarted while its SIGKILLed supervisor was still a zombie (its parent had not
reaped it yet) saw `kill(pid, 0)` succeed, took the zombie for a live node and left its objects.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

from ipc import NodeIPC, cleanup_stale
from ipc.stale import pid_alive, process_start
from tests.ipc.test_endpoint import assert_gone, fork_child, wait_child


def test_zombie_supervisor_is_dead_and_its_objects_are_removed() -> None:
    r, wfd = os.pipe()

    def supervisor() -> int:
        n = NodeIPC(backend="posix", ring_capacity=4096)
        n.add_worker(0)
        os.write(wfd, n.sid.encode())
        time.sleep(60)  # SIGKILLed long before
        return 0

    pid = fork_child(supervisor)
    try:
        sid = os.read(r, 64).decode()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (process_start(pid) or ("?",))[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (process_start(pid) or ("?",))[0] == "Z"  # not reaped: kill(pid, 0) still succeeds
        os.kill(pid, 0)
        assert not pid_alive(pid)
        removed = cleanup_stale("posix")
        assert any(f"sl.{sid}.up" in x for x in removed) and any(f"sl.{sid}.0.tx" in x for x in removed)
        assert_gone(sid, 1, "posix")
    finally:
        os.close(r)
        os.close(wfd)
        wait_child(pid)


def test_a_pid_taken_by_a_later_program_is_dead_for_older_objects() -> None:
    other = subprocess.Popen(["sleep", "30"])  # an unrelated program that holds the pid now
    names = [f"/dev/shm/sl.{other.pid}.node", f"/dev/shm/sl.{other.pid}.0.tx"]
    try:
        state, start = process_start(other.pid) or ("?", None)
        assert start is not None and state != "Z"
        assert pid_alive(other.pid, created=start) and pid_alive(other.pid)
        for n in names:  # objects "made" a minute before that program started: a crashed supervisor's
            with open(n, "wb") as f:
                f.write(b"\0" * 64)
            os.utime(n, (start - 60, start - 60))
        assert not pid_alive(other.pid, created=start - 60)
        removed = cleanup_stale("posix")
        assert all(any(n in x for x in removed) for n in names), removed
        assert not any(os.path.exists(n) for n in names)
    finally:
        other.kill()
        other.wait()
        for n in names:
            if os.path.exists(n):
                os.unlink(n)


def test_a_live_node_made_after_its_process_started_is_kept() -> None:
    node = NodeIPC(backend="posix", ring_capacity=4096)
    try:
        node.add_worker(0)
        r, wfd = os.pipe()

        def other_node() -> int:  # another live supervisor's cleanup must not touch ours
            os.write(wfd, ",".join(cleanup_stale("posix")).encode() or b"-")
            return 0

        pid = fork_child(other_node)
        removed = os.read(r, 65536).decode()
        wait_child(pid)
        os.close(r)
        os.close(wfd)
        assert f"sl.{node.sid}." not in removed
        assert os.path.exists(f"/dev/shm/sl.{node.sid}.0.tx")
    finally:
        node.close()
