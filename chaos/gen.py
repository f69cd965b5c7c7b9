"""Seeded generators of bad input (an equivalent of hypothesis strategies, but fast enough to push
10^4 cases per target through live processes and reproducible from one seed).

Every generator returns (case, kind): `kind` names the mutation, so a failure report says what
sort of input broke something. Control-message mutations are all *invalid* by construction:
each one must be answered by exactly one error.
"""
from __future__ import annotations

import random
import string
import uuid as _uuid
from typing import Any

import orjson

WEIRD_STR = ["", " ", "\x00", "\u00e9\u4e2d", "\ud7ff", "a" * 300, "../../etc/passwd", "$SL/", "#", "+", "a/+/b",
             "null", "0", "-1", "\n", "%s%n", "\\", "\"", "{}", "[]"]
JSON_JUNK: list[Any] = [None, True, False, 0, -1, 2 ** 63, 1.5e308, "", "x", [], [1, 2], {}, {"a": 1}]


def rstr(r: random.Random, n: int = 12) -> str:
    if r.random() < 0.3:
        return r.choice(WEIRD_STR)
    alphabet = string.printable + "\u00e9\u4e2d\U0001f600/+#$"
    return "".join(r.choice(alphabet) for _ in range(r.randint(0, n)))


def rbytes(r: random.Random, n: int = 64) -> bytes:
    return bytes(r.getrandbits(8) for _ in range(r.randint(0, n)))


def junk(r: random.Random, not_type: type | tuple[type, ...] | None = None) -> Any:
    """A JSON value that is not of `not_type` (bool counts as its own type)."""
    while True:
        v = r.choice(JSON_JUNK + [rstr(r), r.randint(-5, 5)])
        if not_type is None:
            return v
        if isinstance(v, bool) and bool not in (not_type if isinstance(not_type, tuple) else (not_type,)):
            return v
        if not isinstance(v, not_type):
            return v


def valid_create(r: random.Random, parent: str) -> dict[str, Any]:
    return {"object_id": str(_uuid.uuid4()), "action": "create", "type": "req", "data": {
        "type": "module", "uuid": str(_uuid.uuid4()), "name": "fz", "parent": parent, "file": "none.wasm",
        "apis": [], "args": {"argv": ["a"], "env": [], "dirs": []},
        "channels": [{"path": "in", "mode": "r", "topic": "fz/in"}]}}


def bad_control(r: random.Random, parent: str) -> tuple[bytes, str]:
    """One invalid control message for a runtime's control topic, and the kind of mutation."""
    msg = valid_create(r, parent)
    d = msg["data"]
    kind = r.choice(["bytes", "truncated", "not_object", "action_missing", "action_type", "action_unknown",
                     "data_missing", "data_type", "dtype", "uuid_missing", "uuid_type", "uuid_empty", "field_type",
                     "args_type", "channels_entry", "channels_mode", "delete_unknown", "object_id_type",
                     "deep", "duplicate"])
    if kind == "bytes":
        return b"\xff" + rbytes(r, 200), kind
    if kind == "truncated":
        raw = orjson.dumps(msg)
        return raw[: r.randint(0, len(raw) - 1)], kind
    if kind == "not_object":
        return orjson.dumps(r.choice([None, 1, "create", [msg], [], 2.5])), kind
    if kind == "action_missing":
        del msg["action"]
    elif kind == "action_type":
        msg["action"] = junk(r, str)
    elif kind == "action_unknown":
        msg["action"] = r.choice(["explode", "", "CREATE", "delete ", "create_batch", rstr(r)])
        if msg["action"] in ("create", "delete", "exited", "update"):
            msg["action"] = "explode"
    elif kind == "data_missing":
        del msg["data"]
    elif kind == "data_type":
        msg["data"] = junk(r, dict)
    elif kind == "dtype":
        d["type"] = r.choice(["runtime", "manager", "", 5, None, "Module"])
    elif kind == "uuid_missing":
        del d["uuid"]
    elif kind == "uuid_type":
        d["uuid"] = junk(r, str)
    elif kind == "uuid_empty":
        d["uuid"] = ""
    elif kind == "field_type":
        key = r.choice(["name", "file", "args", "apis", "channels"])
        want = {"name": str, "file": str, "args": dict, "apis": list, "channels": list}[key]
        v = junk(r, want)
        while v is None:
            v = junk(r, want)
        d[key] = v
    elif kind == "args_type":
        key = r.choice(["argv", "env", "dirs"])
        v = junk(r, list)
        while v is None:
            v = junk(r, list)
        d["args"][key] = v
    elif kind == "channels_entry":
        e = d["channels"][0]
        which = r.choice(["path", "topic", "mode", "entry"])
        if which == "entry":
            d["channels"][0] = junk(r, dict)
        elif which == "mode":
            e["mode"] = r.choice([None, 3, "", "x", "rwx", "R"])
        else:
            del e[which]
    elif kind == "channels_mode":
        d["channels"][0]["mode"] = r.choice(["a", "wr ", "", "rr"])
    elif kind == "delete_unknown":
        msg = {"object_id": str(_uuid.uuid4()), "action": "delete", "type": "req",
               "data": {"type": "module", "uuid": str(_uuid.uuid4())}}
    elif kind == "object_id_type":
        msg["object_id"] = r.choice([1, [], {}, True, 2.5])
    elif kind == "deep":
        depth = r.randint(200, 5000)  # orjson refuses more than 1024 levels
        d["uuid"] = 7  # invalid even when the parser accepts the depth
        head, _, tail = orjson.dumps(msg).rpartition(b"}")
        raw = head.rstrip(b"}") + b',"deep":' + b"[" * depth + b"1" + b"]" * depth + b"}}"
        return (raw if r.random() < 0.5 else b'{"action":"create","data":' + b"[" * depth), kind
    elif kind == "duplicate":
        msg["data"]["uuid"] = "fz-duplicate"  # the first one of these is created once up front
    return orjson.dumps(msg), kind


def open_case(r: random.Random) -> tuple[int, int, str]:
    """A channel-open request as a module could make it: [fd, flags, topic]."""
    fd = r.randint(0, 255)
    flags = r.choice([1, 2, 3, 5, 6, 7, 9, 10, 11, 0, 16, 0xFF, r.randint(0, 255)])
    topic = r.choice(["g", "g/" + rstr(r), "$SL/" + rstr(r), rstr(r), "g/+", "g/#", "g/" + "x" * r.randint(60000, 70000),
                      "other/x", "", "/", "g//", "$SL", "g/\u00e9", "#", "+/+"])
    return fd, flags, topic


def rest_path(r: random.Random) -> str:
    """A REST path (percent-encoded where needed) for GET."""
    from urllib.parse import quote
    seg = r.choice(["runtimes", "modules", "queued", "status", "", "api", rstr(r), "..", "%", "%zz", "%00", "x" * 5000])
    parts = ["", "api", seg]
    if r.random() < 0.6:
        parts.append(r.choice([rstr(r), str(_uuid.uuid4()), str(_uuid.uuid4())[-6:], "..", "%2e%2e", "", "a/b/c"]))
    path = "/".join(quote(p, safe="/%") if r.random() < 0.8 else quote(p, safe="") for p in parts)
    if r.random() < 0.5:
        path += "/"
    if r.random() < 0.5:
        keys = ["start", "count", "type", "status", "runtime", rstr(r, 5)]
        q = "&".join(f"{quote(r.choice(keys))}={quote(r.choice([str(r.randint(-10, 10 ** 20)), rstr(r), '', 'A', 'A,Q', '-1', 'nan', '1e9']))}"
                     for _ in range(r.randint(1, 4)))
        path += "?" + q + (r.choice(["", "&", "&&", "=", "%"]))
    return path


def raw_http(r: random.Random, port: int) -> bytes:
    """A malformed HTTP request (raw bytes)."""
    kind = r.choice(["badline", "binary", "longheader", "nohost", "badversion", "method"])
    if kind == "badline":
        return b"GET\r\n\r\n"
    if kind == "binary":
        return b"GET /api/\xff\x00\x01 HTTP/1.1\r\nHost: x\r\n\r\n"
    if kind == "longheader":
        return b"GET /api/runtimes/ HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000 + b"\r\n\r\n"
    if kind == "nohost":
        return b"GET /api/modules/?start=-1 HTTP/1.0\r\n\r\n"
    if kind == "badversion":
        return b"GET /api/queued/ HTTP/9.9\r\n\r\n"
    return r.choice([b"POST", b"DELETE", b"BREW", b"PUT"]) + b" /api/modules/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
