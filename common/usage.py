"""The command-line layer every tool shares (`manage.py` scripts, cluster scripts, `start.py`):
parse a docopt usage text, say a usage mistake in one line, and turn errors into exit codes.

docopt says "this does not match" and leaves the person to find out why (its messages name its
own internals: `[Option('-r', '--runtime', 1, 'linux')]`). `parse` therefore explains a failed
match itself, from the same usage text: an unknown option (with the closest known one), an option
without its value, a required option or argument that is missing, an argument too many. Every
message names the option and what is expected, and ends with where the help is.

A usage mistake exits 2 (as docopt, argparse and getopt tools do); other errors a tool declares
to `guard` exit 1 by default.
"""
from __future__ import annotations

import difflib
import functools
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from docopt import DocoptExit, docopt

USAGE_EXIT = 2


class UsageError(ValueError):
    """A command line that is wrong; the text says which option and what is expected."""


@dataclass(frozen=True)
class OptionSpec:
    names: tuple[str, ...]  # e.g. ("-f", "--file")
    arg: str | None  # the value's placeholder (FILE), None for a flag

    @property
    def label(self) -> str:
        return "/".join(self.names) + (f" {self.arg}" if self.arg else "")


_OPT_TOKEN = re.compile(r"^(--?[A-Za-z0-9][\w-]*)(?:=(\S+))?$")


def option_specs(doc: str) -> dict[str, OptionSpec]:
    """Every option an `Options:` line of `doc` describes (`-f, --file FILE  text`), by each name."""
    specs: dict[str, OptionSpec] = {}
    for line in doc.splitlines():
        s = line.strip()
        if not s.startswith("-"):
            continue
        head = re.split(r"\s{2,}", s, maxsplit=1)[0]
        names: list[str] = []
        arg: str | None = None
        after_name = False
        for tok in re.split(r"[ ,]+", head):
            m = _OPT_TOKEN.match(tok)
            if m:
                names.append(m.group(1))
                arg = m.group(2) or arg
                after_name = True
            elif tok and after_name and arg is None:
                arg = tok
                after_name = False
            elif tok:
                break  # the description, when only one space separates it
        if names:
            spec = OptionSpec(tuple(names), arg)
            for n in names:
                specs.setdefault(n, spec)
    for line in usage_lines(doc):  # options written only in the usage (`--list-runtimes`)
        for m in re.finditer(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*)(=\S+)?", line):
            specs.setdefault(m.group(1), OptionSpec((m.group(1),), m.group(2)[1:] if m.group(2) else None))
    return specs


def usage_lines(doc: str) -> list[str]:
    """The lines of the `Usage:` section, each without its leading program words' indentation."""
    m = re.search(r"^\s*usage:(.*?)(?:\n\s*\n|\Z)", doc, re.I | re.S | re.M)
    if not m:
        return []
    return [ln.strip() for ln in m.group(1).strip().splitlines() if ln.strip()]


def expand_multi(argv: list[str], flags: Iterable[str]) -> list[str]:
    """The seed's `-f a.wasm b.wasm` (argparse nargs='+') -> `-f a.wasm -f b.wasm` for `flags`.
    A value that starts with `-` needs the flag again (`-a -x`), as in argparse."""
    multi = set(flags)
    out: list[str] = []
    current: str | None = None  # the multi flag whose values are being read
    fresh = False  # the token before was that flag itself (its first value comes next)
    for tok in argv:
        if tok == "--":
            current = None
            out.append(tok)
        elif tok in multi:
            current, fresh = tok, True
            out.append(tok)
        elif current is not None and (fresh or not tok.startswith("-")):
            if not fresh:
                out.append(current)
            out.append(tok)
            fresh = False
        else:
            current = None
            out.append(tok)
    return out


def _words(line: str) -> list[tuple[str, int, bool]]:
    """(token, bracket depth, next to a `|`) for each token of a usage line after the program words."""
    spaced = re.sub(r"([\[\]()|])", r" \1 ", line).split()
    out: list[tuple[str, int, bool]] = []
    depth = 0
    for i, tok in enumerate(spaced):
        if tok == "[":
            depth += 1
        elif tok == "]":
            depth -= 1
        elif tok not in ("(", ")", "|", "...") and not tok.endswith("..."):
            alt = (i > 0 and spaced[i - 1] == "|") or (i + 1 < len(spaced) and spaced[i + 1] == "|")
            out.append((tok, depth, alt))
        elif tok.endswith("...") and tok != "...":
            out.append((tok[:-3], depth, False))
    return out


def explain(doc: str, prog: str, argv: list[str]) -> str:
    """Why `argv` does not fit `doc`'s usage, in one line naming the option and what is expected."""
    specs = option_specs(doc)
    seen: set[str] = set()
    used: list[str] = []  # the first name of each option given, once per time
    positional: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            positional.extend(argv[i + 1:])
            break
        if tok.startswith("--"):
            name, eq, _ = tok.partition("=")
            spec = specs.get(name) or _prefix(specs, name)
            if spec is None:
                return _unknown(name, specs)
            if spec.arg and not eq:
                if i + 1 >= len(argv):
                    return f"{'/'.join(spec.names)} expects a value ({spec.arg})"
                i += 1
            elif not spec.arg and eq:
                return f"{spec.label} takes no value, got {tok!r}"
            seen.update(spec.names)
            used.append(spec.names[0])
        elif tok.startswith("-") and len(tok) > 1 and not _is_number(tok):
            for j, ch in enumerate(tok[1:], 1):
                spec = specs.get(f"-{ch}")
                if spec is None:
                    return _unknown(f"-{ch}", specs)
                seen.update(spec.names)
                used.append(spec.names[0])
                if spec.arg:
                    if j == len(tok) - 1:
                        if i + 1 >= len(argv):
                            return f"{'/'.join(spec.names)} expects a value ({spec.arg})"
                        i += 1
                    break
        else:
            positional.append(tok)
        i += 1
    text = " ".join(usage_lines(doc))
    for spec in {specs[n] for n in used}:
        if used.count(spec.names[0]) > 1 and not any(
                re.search(rf"(?<![\w-]){re.escape(n)}\b[^|\[\]()]*[\])]?\.\.\.", text) for n in spec.names):
            return f"{spec.label} given twice; give it once"
    lines = [ln for ln in usage_lines(doc) if not re.search(r"(^|\s)-h\s*\|\s*--help", ln)] or usage_lines(doc)
    problems: list[str] = []
    for ln in lines:
        words = _words(ln)[len(prog.split()):]
        missing = [t for t, depth, alt in words if depth == 0 and not alt and t.startswith("-") and t.split("=")[0] not in seen]
        wanted = [t for t, depth, alt in words if _is_placeholder(t, words, specs) and depth == 0]
        commands = [t for t, depth, alt in words if depth == 0 and not alt and t.islower() and not t.startswith("-")
                    and not _is_placeholder(t, words, specs)]
        if any(c not in positional for c in commands):
            problems.append(f"expected {' '.join(commands)}")
        elif missing:
            spec = specs.get(missing[0].split("=")[0])
            problems.append(f"{spec.label if spec else missing[0]} is required")
        elif len(positional) < len(wanted):
            problems.append(f"missing {wanted[len(positional)]}")
        elif not any(_is_placeholder(t, words, specs) for t, _, _ in words) and positional:
            problems.append(f"unexpected argument {positional[0]!r}")
        else:
            problems.append("")
    if problems and all(problems):
        return problems[0]
    if positional:
        return f"unexpected argument {positional[-1]!r} (or an option given twice)"
    return f"these arguments do not fit the usage: {' '.join(argv)!r}"


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def _is_placeholder(tok: str, words: list[tuple[str, int, bool]], specs: dict[str, OptionSpec]) -> bool:
    """A positional argument of the usage: `<x>` or an UPPER word that is no option's value."""
    if tok.startswith("<") and tok.endswith(">"):
        return True
    if not tok.isupper() or tok in ("[OPTIONS]",):
        return False
    idx = [w[0] for w in words].index(tok)
    before = words[idx - 1][0] if idx > 0 else ""
    return not (before.startswith("-") and before.split("=")[0] in specs and specs[before.split("=")[0]].arg)


def _prefix(specs: dict[str, OptionSpec], name: str) -> OptionSpec | None:
    """docopt accepts a unique prefix of a long option (`--verb` for `--verbose`)."""
    hits = {specs[n] for n in specs if n.startswith("--") and n.startswith(name)}
    return hits.pop() if len(hits) == 1 else None


def _unknown(name: str, specs: dict[str, OptionSpec]) -> str:
    bare = {n.lstrip("-"): n for n in specs if n.startswith("--") == name.startswith("--")}
    close = difflib.get_close_matches(name.lstrip("-"), list(bare), 1, 0.75)
    hint = f"; did you mean {specs[bare[close[0]]].label}?" if close else ""
    return f"unknown option {name}{hint}"


def parse(doc: str, prog: str, argv: list[str], *, multi: Iterable[str] = (), options_first: bool = False) -> dict[str, Any]:
    """docopt over `doc`, whose usage lines start with `prog` (e.g. `manage.py run` or `start.py`).

    `-h`/`--help` prints `doc` and exits 0. Options in `multi` take several values after one flag
    (`-f a b`). A command line that does not fit raises UsageError with one line (see `explain`)."""
    if any(a in ("-h", "--help") for a in _before_dashes(argv)):
        print(doc.strip("\n"))
        raise SystemExit(0)
    expanded = expand_multi(argv, multi) if multi else list(argv)
    # docopt takes the first usage word as the program and would match the others (`run`) as commands,
    # which options_first forbids before the options: parse with the program as one word
    words = prog.split()
    plain = re.sub(rf"(?m)^(\s*){re.escape(prog)}\b", rf"\g<1>{words[0]}", doc) if len(words) > 1 else doc
    try:
        parsed = dict(docopt(plain, argv=expanded, default_help=False, options_first=options_first))
    except DocoptExit:
        raise UsageError(f"{explain(doc, prog, expanded)} (see `{prog} -h`)") from None
    for w in words[1:]:  # as docopt would report the command word
        parsed.setdefault(w, True)
    return parsed


def _before_dashes(argv: list[str]) -> list[str]:
    return argv[:argv.index("--")] if "--" in argv else argv


def number(opts: dict[str, Any], key: str, kind: type, lo: float | None = None, hi: float | None = None,
           *, above: float | None = None) -> Any:
    """Option `key` as int or float within [lo, hi] (and > `above`); None when not given;
    UsageError naming the option and the range otherwise."""
    raw = opts.get(key)
    if raw is None:
        return None
    try:
        v = kind(raw)
    except (TypeError, ValueError):
        raise UsageError(f"{key} must be a {'whole number' if kind is int else 'number'}, got {raw!r}") from None
    if above is not None and not v > above:
        raise UsageError(f"{key} must be more than {above:g}, got {raw!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        bound = (f"between {lo} and {hi}" if lo is not None and hi is not None
                 else f"at least {lo}" if lo is not None else f"at most {hi}")
        raise UsageError(f"{key} must be {bound}, got {raw!r}")
    return v


Main = Callable[[list[str]], int]


def guard(prog: str, failures: tuple[type[BaseException], ...] = (), code: int = 1) -> Callable[[Main], Main]:
    """Decorate a tool's main: UsageError -> `PROG: message` on stderr, exit 2; an exception of
    `failures` -> the same line, exit `code`; ^C -> exit 130."""
    def wrap(fn: Main) -> Main:
        @functools.wraps(fn)
        def main(argv: list[str]) -> int:
            try:
                return fn(argv)
            except UsageError as e:
                print(f"{prog}: {e}", file=sys.stderr)
                return USAGE_EXIT
            except failures as e:
                print(f"{prog}: {e}", file=sys.stderr)
                return code
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                return 130
        return main
    return wrap


def script_name(module: str) -> str:
    """`cli.list_` -> `manage.py list` (the name a person typed)."""
    return f"manage.py {module.rsplit('.', 1)[-1].rstrip('_')}"
