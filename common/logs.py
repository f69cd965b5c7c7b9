"""Logging in the seed's format: `[time] [{module}:{LEVEL}] message`.

Logger names are the seed's module names: `mq` (MQTT), `ch` (channels), `mgr` (node
manager), `if.NAME` (runtime interface, manager side), `rt.NAME` (the runtime itself),
plus `orch` (orchestrator) and `cli`. Levels print as CRI/ERR/WRN/INF/DBG, TRA below 10.
Under systemd (`JOURNAL_STREAM` set) lines carry a syslog `<N>` prefix and no colour.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_ABBREV = {logging.CRITICAL: "CRI", logging.ERROR: "ERR", logging.WARNING: "WRN", logging.INFO: "INF", logging.DEBUG: "DBG"}
_SYSLOG = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}
_COLOUR = {logging.CRITICAL: "\033[1;31m", logging.ERROR: "\033[31m", logging.WARNING: "\033[33m", logging.INFO: "\033[36m", logging.DEBUG: "\033[2m"}


def level_abbrev(levelno: int) -> str:
    if levelno in _ABBREV:
        return _ABBREV[levelno]
    if levelno < logging.DEBUG:
        return "TRA"
    # between the named levels: round down to the nearest one
    for lv in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG):
        if levelno >= lv:
            return _ABBREV[lv]
    return "TRA"


def parse_level(text: str | int) -> int:
    """Accept 20, '20', 'INFO', 'INF', 'info', 'trace'."""
    if isinstance(text, int):
        return text
    t = text.strip().upper()
    if t.isdigit():
        return int(t)
    for lv, ab in _ABBREV.items():
        if t in (ab, logging.getLevelName(lv)):
            return lv
    if t in ("TRA", "TRACE"):
        return TRACE
    if t == "WARN":
        return logging.WARNING
    raise ValueError(f"unknown log level {text!r} (use a number or one of CRI ERR WRN INF DBG TRA)")


class SeedFormatter(logging.Formatter):
    def __init__(self, colour: bool = False, journal: bool = False) -> None:
        super().__init__()
        self.colour = colour
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        ab = level_abbrev(record.levelno)
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        if self.journal:
            lv = min((v for k, v in _SYSLOG.items() if record.levelno >= k), default=7)
            return f"<{lv}>[{record.name}:{ab}] {msg}"
        head = f"[{t}] [{record.name}:{ab}]"
        if self.colour:
            head = _COLOUR.get(record.levelno, "\033[2m") + head + "\033[0m"
        return f"{head} {msg}"


def setup_logging(level: int | str = logging.INFO, logdir: str | None = None, *, logfile_name: str = "node.log", stream: TextIO | None = None) -> None:
    """Configure the root logger once for a process (supervisor, orchestrator, CLI)."""
    lv = parse_level(level)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    stream = stream or sys.stderr
    journal = bool(os.environ.get("JOURNAL_STREAM"))
    colour = not journal and hasattr(stream, "isatty") and stream.isatty() and not os.environ.get("NO_COLOR")
    h = logging.StreamHandler(stream)
    h.setFormatter(SeedFormatter(colour=colour, journal=journal))
    root.addHandler(h)
    if logdir:
        os.makedirs(logdir, exist_ok=True)
        fh = logging.FileHandler(os.path.join(logdir, logfile_name))
        fh.setFormatter(SeedFormatter())
        root.addHandler(fh)
    root.setLevel(lv)


class EarlyRecords(logging.Handler):
    """Holds the records logged before `setup_logging()` (config warnings while the settings are
    read), so they come out in the seed's format and reach the log file, instead of as Python's
    bare last-resort lines. `EarlyRecords.hold()` before, `.replay()` after the set-up."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @classmethod
    def hold(cls) -> "EarlyRecords":
        held = cls()
        logging.getLogger().addHandler(held)
        return held

    def replay(self) -> None:
        """Hand the held records to the root logger's handlers as they are now (set up or not:
        with none, Python's last resort prints them), then stop holding."""
        root = logging.getLogger()
        root.removeHandler(self)
        for record in self.records:
            if record.levelno < root.getEffectiveLevel():
                continue
            if root.handlers:
                root.handle(record)
            elif logging.lastResort is not None and record.levelno >= logging.lastResort.level:
                logging.lastResort.handle(record)
        self.records = []
