"""Remove the IPC objects of supervisors that are no longer alive.

The kernel keeps POSIX queues and shared memory after a crash, and a handful of stale
queues exhausts the per-user RLIMIT_MSGQUEUE; so a supervisor calls `cleanup_stale()`
at start. An object `/sl.<sid>...` is stale when the process `<pid>` (the leading digits
of the sid) is gone; objects of this very process count as stale unless a live NodeIPC
of this process owns them (a pid reused after a crash).

"Gone" includes (regression: a restart while the killed supervisor was still a
zombie kept its objects) a zombie (`kill(pid, 0)` succeeds on one), and a pid that another
program took since: a process that started after the object was created cannot be its owner.
"""
from __future__ import annotations

import logging
import os
import re

from .backends import sysv_key
from .endpoint import _live_sids, names

log = logging.getLogger("mgr")

_NAME = re.compile(r"^sl\.(?P<sid>(?P<pid>\d+)(?:-\d+)?)\.")


START_SLACK = 2.0  # seconds: /proc/stat's btime is whole seconds, a process's start is in clock ticks


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def process_start(pid: int) -> tuple[str, float | None] | None:
    """(state letter, start time as a Unix time) of `pid` from /proc, None when there is no such process.
    Without /proc: ("?", None) while `kill(pid, 0)` finds the pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None
    except OSError:
        raw = ""
    if not raw:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ("?", None)
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces and ')'
    boot = _boot_time()
    start = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK") if boot is not None else None
    return (fields[0], start)


def pid_alive(pid: int, created: float | None = None) -> bool:
    """Is `pid` a running process that can have created an object at Unix time `created`?"""
    if pid <= 0:
        return False
    got = process_start(pid)
    if got is None:
        return False
    state, start = got
    if state in ("Z", "X", "x"):
        return False  # a zombie (killed, not reaped yet) or dead: it will never unlink anything
    if created is not None and start is not None and start > created + START_SLACK:
        return False  # the pid was reused by a process that started after the object was made
    return True


def _created(path: str) -> float | None:
    """When the object at `path` was made (mtime and ctime only move forward, so the older one)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return min(st.st_mtime, st.st_ctime)


def _stale_sid(sid: str, pid: int, created: float | None = None) -> bool:
    if pid == os.getpid():
        return sid not in _live_sids
    return not pid_alive(pid, created)


def cleanup_stale(backend: str = "posix") -> list[str]:
    """Unlink the objects of dead supervisors; returns what was removed."""
    return _cleanup_posix() if backend == "posix" else _cleanup_sysv()


_SLOT = re.compile(r"^sl\.[\d-]+\.(\d+)\.(?:tx|rx)$")


def _cleanup_posix() -> list[str]:
    import posix_ipc  # type: ignore[import-not-found]

    removed: list[str] = []
    # Queues by name, derived from /dev/shm (works also where /dev/mqueue is not mounted).
    try:
        shm_entries = os.listdir("/dev/shm")
    except OSError:
        shm_entries = []
    stale_slots: dict[str, set[int]] = {}
    for entry in shm_entries:
        m = _NAME.match(entry)
        if m and _stale_sid(m["sid"], int(m["pid"]), _created(os.path.join("/dev/shm", entry))):
            slots = stale_slots.setdefault(m["sid"], set())
            sm = _SLOT.match(entry)
            if sm:
                slots.add(int(sm[1]))
    for sid, slots in stale_slots.items():
        qnames = [names(sid)["up"]] + [names(sid, s)["down"] for s in sorted(slots)]
        for q in qnames:
            try:
                posix_ipc.unlink_message_queue(q)
                removed.append(f"mq:{q}")
            except posix_ipc.ExistentialError:
                pass
            except OSError as e:
                log.warning("cannot remove stale queue %s: %s", q, e)
    for d in ("/dev/mqueue", "/dev/shm"):
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        for entry in entries:
            m = _NAME.match(entry)
            if not m or (m["sid"] not in stale_slots and not _stale_sid(m["sid"], int(m["pid"]), _created(os.path.join(d, entry)))):
                continue
            try:
                os.unlink(os.path.join(d, entry))
                removed.append(f"{d}/{entry}")
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("cannot remove stale IPC object %s/%s: %s", d, entry, e.strerror)
    if removed:
        log.info("removed %d stale IPC objects of dead supervisors", len(removed))
    return removed


def _sysv_table(path: str) -> list[tuple[int, int]]:
    """(key, creator pid) of every object in /proc/sysvipc/{msg,shm}."""
    rows: list[tuple[int, int]] = []
    try:
        with open(path) as f:
            header = f.readline().split()
            ki, ci = header.index("key"), header.index("cpid")
            for line in f:
                cols = line.split()
                rows.append((int(cols[ki]), int(cols[ci])))
    except (OSError, ValueError, IndexError):
        pass
    return rows


def _cleanup_sysv(max_slot: int = 256) -> list[str]:
    """SysV objects have keys, not names: match the keys a dead supervisor would have used.

    Shared memory records its creator pid; queues do not (/proc/sysvipc/msg has none), so
    queues are found through the shm blocks of the same node, as in the POSIX case.
    """
    import sysv_ipc  # type: ignore[import-not-found]

    removed: list[str] = []
    stale_slots: dict[str, set[int]] = {}
    for key, cpid in _sysv_table("/proc/sysvipc/shm"):
        sid = str(cpid)
        if not _stale_sid(sid, cpid):
            continue
        for name in names(sid).values():
            if sysv_key(name) == key:
                stale_slots.setdefault(sid, set())
        for slot in range(max_slot):
            for name in names(sid, slot).values():
                if sysv_key(name) == key:
                    stale_slots.setdefault(sid, set()).add(slot)
    for sid, slots in stale_slots.items():
        shm = [names(sid)["node"]] + [n for s in sorted(slots) for n in (names(sid, s)["tx"], names(sid, s)["rx"])]
        queues = [names(sid)["up"]] + [names(sid, s)["down"] for s in sorted(slots)]
        for kind, group in ((sysv_ipc.SharedMemory, shm), (sysv_ipc.MessageQueue, queues)):
            for name in group:
                try:
                    kind(sysv_key(name)).remove()
                    removed.append(f"sysv:{name}")
                except sysv_ipc.Error:
                    pass
    return removed
