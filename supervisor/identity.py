"""Stable identities: a node restarted with the same name keeps its manager and runtime uuids.

Stored in `STATE_DIR/<name>.json` = `{"manager": uuid, "runtimes": {full_name: uuid}}`. Default
directory: `$XDG_STATE_HOME/silverline` or `~/.local/state/silverline`. A `--uuid` flag overrides the
manager uuid; runtime uuids are then derived from it (uuid5), so the same flag gives the same uuids.

A state directory the node cannot write, or an identity file it cannot read or parse, is a
`StateError` (start.py: one line, exit 2, which the systemd unit does not restart): a corrupt
identity is never replaced by new uuids, since the orchestrator knows the node's modules under the
old ones.

`StateLock`: one supervisor per identity on a machine. A second supervisor with the same
name and state dir (e.g. the systemd unit plus `manage.py start`) ran every module twice; now it
refuses to start, naming the pid that holds `STATE_DIR/<name>.lock` (an flock, released by the
kernel when the holder dies, so a crash leaves no stale lock).
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import tempfile
import uuid as _uuid
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("mgr")

NAMESPACE = _uuid.UUID("5e1f7a2c-3b1d-4c2e-9a57-51c0e2d0a001")
EXIT_DUPLICATE = 4  # start.py's exit status when this identity is taken (the lock, or the orchestrator refused it)
EXIT_STATE = 2  # start.py's exit status for an unusable state directory or identity file (like a usage error: final)


class StateError(Exception):
    """The state directory or the identity file cannot be used; the text says which and what to do."""


def check_state_dir(state_dir: str) -> None:
    """Create `state_dir` if needed and prove it writable (a file created and removed); StateError if not."""
    try:
        os.makedirs(state_dir, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=state_dir, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise StateError(f"state directory {state_dir!r} is not writable ({e.strerror}): make it writable by this "
                         f"user, or choose another with --state-dir (or run with --no-state)") from None


def open_spool(delivery: Any) -> None:
    """`delivery.open()` (the result spool in the state directory); StateError when it cannot be written."""
    try:
        delivery.open()
    except OSError as e:
        path = getattr(delivery.spool, "path", "?")
        raise StateError(f"cannot open the result spool {path} ({e.strerror}): make the state directory writable "
                         f"by this user, or choose another with --state-dir") from None


class IdentityInUse(Exception):
    """Another live supervisor holds this node's identity; the text names its pid."""


class StateLock:
    """An exclusive flock on `STATE_DIR/<name>.lock` for the supervisor's lifetime; the file holds its pid."""

    def __init__(self, state_dir: str, name: str) -> None:
        self.path = os.path.join(state_dir, f"{name.replace('/', '_')}.lock")
        self.name = name
        self._fd = -1

    def acquire(self) -> None:
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StateError(f"cannot open the lock file {self.path} ({e.strerror}): make the state directory "
                             f"writable by this user, or choose another with --state-dir") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise IdentityInUse(f"cannot lock {self.path}: {e.strerror}") from e
            raise IdentityInUse(f"node {self.name!r} is already running here: pid {holder} holds {self.path}; "
                                f"refusing to start a second supervisor with the same identity (stop that one, "
                                f"or use another name or --state-dir)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # the file stays: unlinking it would race with a starting supervisor
            self._fd = -1


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "silverline")


@dataclass
class Identity:
    manager: str
    runtimes: dict[str, str] = field(default_factory=dict)


def is_uuid(u: object) -> bool:
    """A string that is a UUID."""
    try:
        _uuid.UUID(str(u))
        return isinstance(u, str)
    except ValueError:
        return False


def load_identity(name: str, runtime_names: list[str], *, state_dir: str | None, manager_uuid: str | None = None) -> Identity:
    """Read (or create and write) the identity of node `name`; `state_dir=None` disables persistence."""
    path = os.path.join(state_dir, f"{name.replace('/', '_')}.json") if state_dir else None
    stored = Identity(manager="")
    if path and os.path.exists(path):
        stored = read_identity(path)
    if manager_uuid:
        if manager_uuid != stored.manager:
            stored.runtimes = {}
        ident = Identity(manager_uuid)
        for rn in runtime_names:
            ident.runtimes[rn] = stored.runtimes.get(rn) or str(_uuid.uuid5(NAMESPACE, f"{manager_uuid}/{rn}"))
    else:
        ident = Identity(stored.manager or str(_uuid.uuid4()))
        for rn in runtime_names:
            ident.runtimes[rn] = stored.runtimes.get(rn) or str(_uuid.uuid4())
    if path:
        merged = dict(stored.runtimes)
        merged.update(ident.runtimes)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".id-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"manager": ident.manager, "runtimes": merged}, f, indent=1)
            os.replace(tmp, path)
        except OSError as e:
            raise StateError(f"cannot write the identity file {path} ({e.strerror}): make the state directory "
                             f"writable by this user, or choose another with --state-dir (or run with --no-state)") from None
    return ident


def read_identity(path: str) -> Identity:
    """The stored identity; StateError for a file that cannot be read or is not one (never new uuids:
    the orchestrator knows this node's modules under the stored ones)."""
    what = (f"restore it (from a backup, or write the uuids the orchestrator knows: `manage.py list`), "
            f"or move it away to start as a new node with new uuids (its modules at the orchestrator stay orphaned)")
    try:
        with open(path, "rb") as f:
            raw = json.loads(f.read())
    except OSError as e:
        raise StateError(f"identity file {path} is unreadable ({e.strerror}): make it readable by this user") from None
    except ValueError as e:
        raise StateError(f"identity file {path} is corrupt (not JSON: {e}): {what}") from None
    if not isinstance(raw, dict) or not is_uuid(raw.get("manager")):
        raise StateError(f"identity file {path} is corrupt (no manager uuid): {what}")
    rts = raw.get("runtimes", {})
    if not isinstance(rts, dict) or not all(isinstance(k, str) and is_uuid(v) for k, v in rts.items()):
        raise StateError(f"identity file {path} is corrupt (runtimes must map names to uuids): {what}")
    return Identity(raw["manager"], dict(rts))
