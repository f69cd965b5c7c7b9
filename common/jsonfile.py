"""A JSON file that must hold an object (configs, argument files, identity files), read with the
one-line errors every reader of one gives: the file, then what is wrong with it."""
from __future__ import annotations

import json
from typing import Any


class JsonFileError(ValueError):
    """`PATH: what is wrong` (cannot read, not valid JSON, not an object)."""


def read_object(path: str, expected: str = "a JSON object") -> dict[str, Any]:
    """The object in `path`; JsonFileError naming the file and the fault otherwise. `expected`
    says what the object should be, for the message when the file holds something else."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as e:
        raise JsonFileError(f"{path}: cannot read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise JsonFileError(f"{path}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise JsonFileError(f"{path}: not valid JSON: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(raw, dict):
        raise JsonFileError(f"{path}: expected {expected}, got {type(raw).__name__}")
    return raw
