"""The locks agree with what they lock: every requirement of pyproject.toml (dependencies, the test, engines
and dev extras, the build backend) and of requirements/venv310.in is pinned in its lock at a version inside
its range, and nothing is pinned as a direct requirement that is no longer asked for. `make lock` refreshes
the locks after a change of either (Makefile)."""
from __future__ import annotations

import os
import re
import sys
from collections import defaultdict

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the 3.10 lock pins tomli for mypy
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQ = os.path.join(ROOT, "requirements")
EXTRAS = ("test", "engines", "dev")

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def parse_lock(text: str) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """`{name: [pinned versions]}` (a universal lock may pin one name once per Python range) and
    `{name: {the `# via` sources}}`, as uv writes them."""
    pins: dict[str, list[str]] = defaultdict(list)
    via: dict[str, set[str]] = defaultdict(set)
    current = ""
    in_via = False
    for line in text.splitlines():
        m = PIN.match(line)
        if m:
            current = canonicalize_name(m.group(1))
            pins[current].append(m.group(2))
            in_via = False
            continue
        s = line.strip()
        if s.startswith("# via"):
            in_via = True
            rest = s[len("# via"):].strip()
            if rest:
                via[current].add(rest)
        elif in_via and s.startswith("#"):
            via[current].add(s.lstrip("#").strip())
        elif not s.startswith("--hash"):
            in_via = False
    return dict(pins), dict(via)


def disagreements(requirements: list[str], lock_text: str, source: str) -> list[str]:
    """What is wrong between `requirements` (PEP 508 strings) and a lock; [] when they agree.
    `source` is the text uv writes in `# via` for a requirement that came from these (e.g. pyproject.toml)."""
    pins, via = parse_lock(lock_text)
    wanted: dict[str, Requirement] = {}
    bad = []
    for r in requirements:
        req = Requirement(r)
        name = canonicalize_name(req.name)
        wanted[name] = req
        if name not in pins:
            bad.append(f"{req.name}: asked for ({r}) but not in the lock")
            continue
        for v in pins[name]:
            if not req.specifier.contains(v, prereleases=True):
                bad.append(f"{req.name}: the lock pins {v}, outside {req.specifier}")
    for name, sources in via.items():
        if any(source in s for s in sources) and name not in wanted:
            bad.append(f"{name}: pinned as a direct requirement of {source}, which no longer asks for it")
    return bad


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def project_requirements() -> list[str]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        meta = tomllib.load(f)
    reqs = list(meta["project"]["dependencies"])
    for extra in EXTRAS:
        reqs += meta["project"]["optional-dependencies"][extra]
    return reqs


def in_requirements(path: str) -> list[str]:
    return [s for line in read(path).splitlines() if (s := line.split("#", 1)[0].strip())]


def test_venv_lock_agrees_with_pyproject() -> None:
    lock = read(os.path.join(REQ, "venv.lock"))
    assert disagreements(project_requirements(), lock, "pyproject.toml") == []
    assert disagreements(in_requirements(os.path.join(REQ, "build.in")), lock, "requirements/build.in") == []
    header = lock.split("\n", 3)[:3]
    for extra in EXTRAS:
        assert f"--extra {extra}" in header[1], ("the lock was made without an extra `make env` installs", header)


def test_venv310_lock_agrees_with_its_input() -> None:
    lock = read(os.path.join(REQ, "venv310.lock"))
    assert disagreements(in_requirements(os.path.join(REQ, "venv310.in")), lock, "requirements/venv310.in") == []


def test_the_bootstrapped_uv_is_the_locked_one() -> None:
    boot, _ = parse_lock(read(os.path.join(REQ, "uv.txt")))
    pins, _ = parse_lock(read(os.path.join(REQ, "venv.lock")))
    assert boot["uv"] == pins["uv"]
    assert disagreements(in_requirements(os.path.join(REQ, "uv.in")), read(os.path.join(REQ, "uv.txt")),
                         "requirements/uv.in") == []


def test_a_disagreement_is_found() -> None:
    lock = ("orjson==3.13.0 \\\n    --hash=sha256:00\n    # via silverline-node (pyproject.toml)\n"
            "rich==15.0.0 \\\n    --hash=sha256:11\n    # via\n    #   silverline-node (pyproject.toml)\n"
            "#   other\n")
    assert disagreements(["orjson>=3.9,<4", "rich>=13,<16"], lock, "pyproject.toml") == []
    found = disagreements(["orjson>=3.14", "paho-mqtt>=2"], lock, "pyproject.toml")
    assert any("orjson: the lock pins 3.13.0" in f for f in found)
    assert any("paho-mqtt: asked for" in f for f in found)
    assert any("rich: pinned as a direct requirement" in f for f in found)
