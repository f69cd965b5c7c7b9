"""`manage.py list` fits the terminal: at 80 columns the uuid is shortened and columns are dropped
by priority (UUID, Node, Type, Queued), module lines wrap; --wide / a pipe show every column."""
from __future__ import annotations

from rich.console import Console

from cli import list_

RUNTIMES = [
    {"type": "runtime", "uuid": f"0f7c2a9e-1b2c-4d3e-8f90-00000000000{i}", "name": f"node{i}.benchmarking",
     "status": "A", "manager": f"node{i}", "runtime_type": "benchmarking/interference", "max_nmodules": 128,
     "nqueued": 3, "children": [{"uuid": f"aaaaaaaa-0000-4000-8000-00000000000{j}", "name": f"polybench-2mm.wasmtime-{j}",
                                 "file": "wasm/polybench/medium/2mm.wasm", "status": "A", "cpu_usage_percent": 97.0}
                                for j in range(2)],
     "queued": [{"uuid": "bbbbbbbb-0000-4000-8000-000000000001", "name": "waiting", "file": "wasm/x.wasm", "status": "Q"}]}
    for i in range(3)
]


def render(width: int | None, console_width: int) -> str:
    c = Console(width=console_width, record=True, force_terminal=False, color_system=None)
    c.print(list_.table(RUNTIMES, 5, width), crop=False)
    return c.export_text()


def test_fits_80_columns_by_priority() -> None:
    out = render(80, 80)
    lines = out.splitlines()
    assert max(len(ln) for ln in lines) <= 80, "\n".join(ln for ln in lines if len(ln) > 80)
    for i in range(3):
        assert f"node{i}.benchmarking" in out
    assert "UUID" not in out and "Node" not in out  # dropped first
    assert "State" in out and "Running" in out and "2/128" in out and "polybench" in out


def test_layout_steps() -> None:
    cells = list_.rows(RUNTIMES, 5)
    assert list_.layout(cells, None) == (list(list_.COLUMNS), False)
    cols, short = list_.layout(cells, 150)
    assert short and "UUID" in cols  # shortening the uuid was enough
    cols, _ = list_.layout(cells, 40)
    assert cols[:1] == ["Runtime"] and "State" in cols and "Modules" in cols and "Queued" not in cols


def test_wide_shows_every_column() -> None:
    out = render(None, 250)
    for col in list_.COLUMNS:
        assert col in out
    assert RUNTIMES[0]["uuid"] in out
