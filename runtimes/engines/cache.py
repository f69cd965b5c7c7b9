"""Compile cache: content hash + engine settings -> compiled module, in memory and on disk.

The key is sha256(engine fingerprint, module bytes), so a changed file or a changed engine
configuration (version, epoch interruption, optimisation level...) never reuses a stale
artifact (wasmtime refuses artifacts of another configuration anyway). Concurrent loads of the
same key compile once: the others wait for the first (128 modules of one file start together).
The disk layer stores the engine's serialized artifact as `<dir>/<key>.<ext>` written atomically;
the directory is created private (0700) because artifacts are trusted native code.

Python 3.10 compatible.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, Optional

log = logging.getLogger("rt.cache")


class CompileCache:
    """An LRU of compiled modules keyed by content + engine fingerprint, with a disk layer."""

    def __init__(self, fingerprint: str, directory: Optional[str] = None,
                 max_entries: int = 256, ext: str = "cwasm") -> None:
        self.fingerprint = fingerprint
        self.directory = directory
        self.max_entries = max_entries
        self.ext = ext
        self.hits = 0
        self.disk_hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._entries: "OrderedDict[str, Any]" = OrderedDict()
        self._inflight: Dict[str, threading.Event] = {}
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)

    def key(self, data: bytes) -> str:
        h = hashlib.sha256(self.fingerprint.encode())
        h.update(b"\0")
        h.update(data)
        return h.hexdigest()

    def disk_path(self, key: str) -> Optional[str]:
        return os.path.join(self.directory, f"{key}.{self.ext}") if self.directory else None

    def get_or_load(self, key: str, compile_fn: Callable[[], Any],
                    serialize: Optional[Callable[[Any], bytes]] = None,
                    deserialize: Optional[Callable[[str], Any]] = None) -> Any:
        """The cached module for `key`, else deserialize from disk, else `compile_fn()`.

        Exceptions of compile_fn propagate (and nothing is cached).
        """
        while True:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return self._entries[key]
                waiting = self._inflight.get(key)
                if waiting is None:
                    self._inflight[key] = threading.Event()
                    break
            waiting.wait()  # someone else is compiling this key; then look again
        try:
            native = self._load_from_disk(key, deserialize)
            if native is None:
                native = compile_fn()
                with self._lock:
                    self.misses += 1
                self._store_to_disk(key, native, serialize)
            with self._lock:
                self._entries[key] = native
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            return native
        finally:
            with self._lock:
                self._inflight.pop(key).set()

    def _load_from_disk(self, key: str, deserialize: Optional[Callable[[str], Any]]) -> Any:
        path = self.disk_path(key)
        if path is None or deserialize is None or not os.path.exists(path):
            return None
        try:
            native = deserialize(path)
        except Exception as e:  # stale or corrupt artifact: recompile and overwrite it
            log.warning("ignoring cached artifact %s: %s", path, e)
            return None
        with self._lock:
            self.disk_hits += 1
        return native

    def _store_to_disk(self, key: str, native: Any, serialize: Optional[Callable[[Any], bytes]]) -> None:
        path = self.disk_path(key)
        if path is None or serialize is None:
            return
        try:
            data = serialize(native)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except Exception as e:  # a cache that cannot write is slower, not broken
            log.warning("cannot write cached artifact %s: %s", path, e)

    def clear_memory(self) -> None:
        with self._lock:
            self._entries.clear()

    def stats(self) -> Dict[str, int]:
        with self._lock:
            return {"hits": self.hits, "disk_hits": self.disk_hits, "misses": self.misses,
                    "entries": len(self._entries)}
