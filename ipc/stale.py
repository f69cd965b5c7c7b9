"""Remove the IPC objects of supervisors that are no longer alive.

The kernel keeps POSIX queues and shared memory after a crash, and a handful of stale
queues exhausts the per-user RLIMIT_MSGQUEUE; so a supervisor calls `cleanup_stale()`
at start. An object `/sl.<sid>...` is stale when the process `<pid>` (the leading digits
of the sid) is gone; objects of this very process count as stale unless a live NodeIPC
of this process owns them (a pid reused after a crash).
"""
from __future__ import annotations

import logging
import os
import re

from .backends import sysv_key
from .endpoint import _live_sids, names

log = logging.getLogger("mgr")

_NAME = re.compile(r"^sl\.(?P<sid>(?P<pid>\d+)(?:-\d+)?)\.")


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _stale_sid(sid: str, pid: int) -> bool:
    if pid == os.getpid():
        return sid not in _live_sids
    return not pid_alive(pid)


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
        if m and _stale_sid(m["sid"], int(m["pid"])):
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
            if not m or not _stale_sid(m["sid"], int(m["pid"])):
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
