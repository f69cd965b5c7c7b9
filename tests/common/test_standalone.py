"""The project stands alone: nothing it tracks points at a file a clone of this repository lacks.

`outside_references(root, files)` reads the given files and reports, one line each with file and
line number:
- a name of the reference files that lived beside the repository during development (the shared
  directory one level up, and its protocol, design and fact-sheet files): their content now lives in
  docs/protocol.md, docs/design.md and docs/compatibility.md;
- a relative Markdown link (in any tracked `.md`) that leaves the repository or names a missing file,
  or whose `#anchor` is not a heading of the Markdown file it names;
- a `docs/<name>.md` mention of a file that does not exist, and a cited section
  (`docs/<name>.md#<slug>`, or `docs/<name>.md, "<Heading>"`) that no heading of that file is or
  starts with.
The first test runs it over `git ls-files`; the others plant each kind of bad reference in a tmp
dir and check that the same function reports it (so the first test can fail).
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parents[2]

# Built from parts so that this file does not match the patterns it looks for.
_UP = "." + "./shared"
_OLD_NAMES = ("PROTOCOL", "ORIGINAL", "DESIGN")
FORBIDDEN = re.compile("|".join([re.escape(_UP)] + [re.escape(n + ".md") for n in _OLD_NAMES]))
MD_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
DOC_MENTION = re.compile(r"(?<![\w/.-])docs/([\w.-]+\.md)(?:#([\w-]+)|((?:,? \"[^\"\n]+\")+))?")
QUOTED = re.compile(r"\"([^\"\n]+)\"")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
FENCE = re.compile(r"^\s*(```|~~~)")


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(path: Path) -> tuple[set[str], set[str]]:
    """(heading texts, their slugs) of a Markdown file, code blocks left out."""
    titles: set[str] = set()
    fenced = False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and not fenced:
            titles.add(m.group(1).replace("`", ""))
    return titles, {slug(t) for t in titles}


def _text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except (IsADirectoryError, FileNotFoundError):
        return None
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def outside_references(root: Path, files: Iterable[str]) -> list[str]:
    """Every reference in `files` (paths relative to `root`) that points outside `root` or nowhere."""
    root = root.resolve()
    files = sorted(files)
    present = set(files)
    dirs: set[str] = set()
    for f in files:
        for parent in Path(f).parents:
            dirs.add(str(parent))
    cache: dict[Path, tuple[set[str], set[str]]] = {}

    def heads(p: Path) -> tuple[set[str], set[str]]:
        if p not in cache:
            cache[p] = headings(p)
        return cache[p]

    problems: list[str] = []
    for rel in files:
        text = _text(root / rel)
        if text is None:
            continue
        is_md = rel.endswith(".md")
        fenced = False
        for no, line in enumerate(text.splitlines(), 1):
            where = f"{rel}:{no}"
            for m in FORBIDDEN.finditer(line):
                problems.append(f"{where}: {m.group(0)!r} names a file outside this repository; "
                                "cite docs/protocol.md, docs/design.md or docs/compatibility.md instead")
            if is_md and FENCE.match(line):
                fenced = not fenced
                continue
            if is_md and not fenced:
                for m in MD_LINK.finditer(line):
                    target = m.group(1)
                    if SCHEME.match(target) or target == "#":
                        continue
                    path_part, _, anchor = target.partition("#")
                    if not path_part:  # a link to a heading of this file
                        dest = root / rel
                    else:
                        dest = (root / rel).parent / path_part
                    try:
                        inside = os.path.normpath(dest.resolve()).startswith(str(root) + os.sep) or dest.resolve() == root
                    except OSError:
                        inside = False
                    if not inside:
                        problems.append(f"{where}: link {target!r} leaves the repository")
                        continue
                    drel = os.path.relpath(dest.resolve(), root)
                    if drel not in present and drel not in dirs:
                        problems.append(f"{where}: link {target!r} names {drel}, which the repository does not track")
                        continue
                    if anchor and drel.endswith(".md") and anchor not in heads(root / drel)[1]:
                        problems.append(f"{where}: link {target!r}: {drel} has no heading with anchor #{anchor}")
            for m in DOC_MENTION.finditer(line):
                name, anchor, quoted = m.group(1), m.group(2), m.group(3)
                drel = f"docs/{name}"
                if drel not in present:
                    problems.append(f"{where}: {drel} does not exist in the repository")
                    continue
                titles, slugs = heads(root / drel)
                if anchor and anchor not in slugs:
                    problems.append(f"{where}: {drel} has no heading with anchor #{anchor}")
                for title in QUOTED.findall(quoted or ""):
                    if not any(t == title or t.startswith(title) for t in titles):  # the start of a heading will do
                        problems.append(f"{where}: {drel} has no section {title!r}")
    return problems


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    assert out.returncode == 0, f"`git ls-files` failed in {ROOT}: {out.stderr.decode(errors='replace')}"
    return [f for f in out.stdout.decode().split("\0") if f and (ROOT / f).is_file()]


def test_no_tracked_file_points_outside_the_repository() -> None:
    files = tracked_files()
    assert f"{D}protocol.md" in files and f"{D}design.md" in files
    problems = outside_references(ROOT, files)
    assert not problems, "references that point outside the repository or nowhere:\n" + "\n".join(problems)


def _plant(tmp: Path, files: dict[str, str]) -> list[str]:
    for rel, text in files.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(text, encoding="utf-8")
    return outside_references(tmp, files)


D = "docs/"  # planted references are built with it, so that the scan of this file finds none
DOCS = {
    f"{D}protocol.md": "# Protocol\n## Topics\n## Inside a node\n```\n# not a heading\n```\n",
    f"{D}design.md": "# Design\n## Map of the benchmark system\n",
}


def test_a_clean_tree_has_no_problems(tmp_path: Path) -> None:
    files = dict(DOCS)
    files["README.md"] = (f"see [the protocol]({D}protocol.md#topics), [design]({D}design.md), "
                          "[site](https://example.org/x.md) and [here](#readme)\n# Readme\n")
    files["x.py"] = f'"""Messages ({D}protocol.md, "Inside a node"); {D}design.md#map-of-the-benchmark-system."""\n'
    assert _plant(tmp_path, files) == []


def test_each_kind_of_outside_reference_is_reported(tmp_path: Path) -> None:
    files = dict(DOCS)
    files["README.md"] = (f"[seed]({_UP}/seed/)\n"           # 1: leaves the repository (and names the shared dir)
                          f"[gone]({D}missing.md)\n"         # 2: missing file
                          "[up](../elsewhere/README.md)\n"    # 3: leaves the repository
                          f"[bad anchor]({D}protocol.md#nope)\n")  # 4: no such heading
    files["a.py"] = f"# see {_OLD_NAMES[0]}.md section 2\n"  # the old protocol file by name
    files["b.c"] = f"/* {_OLD_NAMES[1]}.md section 4 and {_OLD_NAMES[2]}.md */\n"
    files["c.py"] = f'"""{D}protocol.md, "Topics", "No such section"; {D}nothere.md; {D}design.md#nope."""\n'
    problems = _plant(tmp_path, files)
    text = "\n".join(problems)
    assert "README.md:1: " in text and "leaves the repository" in text
    assert f"README.md:2: link '{D}missing.md'" in text
    assert "README.md:3: link '../elsewhere/README.md' leaves the repository" in text
    assert f"README.md:4: link '{D}protocol.md#nope': {D}protocol.md has no heading with anchor #nope" in text
    assert f"a.py:1: '{_OLD_NAMES[0]}.md'" in text
    assert f"b.c:1: '{_OLD_NAMES[1]}.md'" in text and f"b.c:1: '{_OLD_NAMES[2]}.md'" in text
    assert f"c.py:1: {D}protocol.md has no section 'No such section'" in text
    assert f"c.py:1: {D}nothere.md does not exist" in text
    assert f"c.py:1: {D}design.md has no heading with anchor #nope" in text
    assert "'Topics'" not in text  # an existing section is not reported
    assert _plant(tmp_path, {**DOCS, "y.py": f'# {D}protocol.md, "Inside a"\n'}) == []  # nor the start of one
    assert _plant(tmp_path, {**DOCS, "z.py": f'# {D}protocol.md, "Inside b"\n'})
    assert len([p for p in problems if p.startswith("README.md:1:")]) == 2  # the name, and the link


def test_slugs_follow_github() -> None:
    assert slug("Pitot's preprocessing") == "pitots-preprocessing"
    assert slug("The node: a supervisor and one worker per runtime") == "the-node-a-supervisor-and-one-worker-per-runtime"
    assert slug("REST API") == "rest-api"
