"""API names: ours and the original SilverLine's, for the same capability.

Runtimes register apis and modules ask for them; the original registers and schedules by
`stdio:out`, `stdio:in`, `profile:benchmarking`, ... (docs/compatibility.md, "Seen beside the original tools"), where
this project's first names were `stdout`, `stdin`, `benchmarking`. Our runtimes register both
(runtimes/*.py), and placement treats the two names of a pair as one (`with_aliases`), so a
module asking for either is placed on a runtime that registered either: ours or the original's.
"""
from __future__ import annotations

from typing import Iterable

# ours -> the original's name for the same capability (names not listed are the same in both)
ORIGINAL_NAME: dict[str, str] = {
    "stdout": "stdio:out",
    "stdin": "stdio:in",
    "benchmarking": "profile:benchmarking",
}
OURS_NAME: dict[str, str] = {v: k for k, v in ORIGINAL_NAME.items()}

# every API name the original registers or schedules by (docs/compatibility.md, "The original runtimes", "Seen beside the original tools")
ORIGINAL_APIS: tuple[str, ...] = (
    "wasm", "wasi", "stdio:in", "stdio:out", "channels", "profile:benchmarking", "profile:benchmarking-seeded",
    "profile:interference", "profile:opcodes", "profile:deployed", "wasm:wasmer",
)


def with_aliases(apis: Iterable[str]) -> frozenset[str]:
    """`apis` plus the other name of each pair: what a runtime with these apis provides."""
    out = set(apis)
    for a in list(out):
        other = ORIGINAL_NAME.get(a) or OURS_NAME.get(a)
        if other:
            out.add(other)
    return frozenset(out)
