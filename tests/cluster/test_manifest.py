"""Unit tests of the manifest TSV parser (common/manifest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from common.manifest import COLUMNS, ManifestError, load_manifest, parse_manifest, select_devices

HEADER = "\t".join(COLUMNS) + "\twasmtime\twasmer\tiwasm"
ROW1 = "\t".join(["pi4", "Raspberry Pi 4", "Cortex-A72", "cortex-a72", "aarch64-unknown-linux-gnu", "aarch64", "no", "v2", "4G", "1G", "sd"]) + "\tx\t\tX"
ROW2 = "\t".join(["nuc", "NUC", "i7-1165G7", "x86-64-v3", "x86_64-unknown-linux-gnu", "x86_64", "yes", "v1", "16G", "1G", "ssd"]) + "\tx\tx"


def test_parses_rows_engines_and_fields() -> None:
    devs = parse_manifest(f"# cluster\n{HEADER}\n\n{ROW1}\n{ROW2}\n")
    assert [d.name for d in devs] == ["pi4", "nuc"]
    pi, nuc = devs
    assert pi.engines == ("wasmtime", "iwasm") and pi.has_engine("IWASM")
    assert nuc.engines == ("wasmtime", "wasmer")  # trailing empty cell trimmed
    assert pi.triple == "aarch64-unknown-linux-gnu" and pi.line == 4
    f = pi.fields(domain="lab.example", username="me")
    assert f["fullname"] == "pi4.lab.example" and f["arch"] == "aarch64" and f["cgroup"] == "v2"
    assert "{name}-{arch}".format(**f) == "pi4-aarch64"


def test_columns_in_any_order_and_case() -> None:
    cols = list(reversed(COLUMNS))
    header = "\t".join(c.lower() for c in cols)
    vals = {c: c.lower() + "v" for c in COLUMNS}
    vals["Device"] = "d1"
    row = "\t".join(vals[c] for c in cols)
    (d,) = parse_manifest(f"{header}\n{row}\n")
    assert d.name == "d1" and d.triple == "triplev" and d.engines == ()


@pytest.mark.parametrize(
    "text, where",
    [
        ("", "empty manifest"),
        ("Device Model CPU\n", "line 1: header lacks column(s)"),
        (f"{HEADER}\n{ROW1}\tx\tx\n", "line 2, column 15"),
        (f"{HEADER}\npi\tm\n", "line 2, column 3 (CPU): missing"),
        (f"{HEADER}\n{ROW1.replace(chr(9) + 'X', chr(9) + 'yes')}\n", "line 2, column 14 (iwasm): engine cells must be 'x' or empty, got 'yes'"),
        (f"{HEADER}\n{ROW1}\n{ROW1}\n", "line 3, column 1 (Device): duplicate device 'pi4' (first on line 2)"),
        (f"{HEADER}\n\t" + ROW1.split("\t", 1)[1] + "\n", "column 1 (Device): empty device name"),
        (f"{HEADER}\nbad name\t" + ROW1.split("\t", 1)[1] + "\n", "bad device name 'bad name'"),
        (HEADER + "\tCPU\n", "duplicate column 'CPU'"),
    ],
)
def test_errors_name_line_and_column(text: str, where: str) -> None:
    with pytest.raises(ManifestError) as e:
        parse_manifest(text, "m.tsv")
    assert str(e.value).startswith("m.tsv") and where in str(e.value)


def test_load_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(str(tmp_path / "nope.tsv"))
    p = tmp_path / "m.tsv"
    p.write_text(f"{HEADER}\n{ROW1}\n")
    assert load_manifest(str(p))[0].name == "pi4"


def test_select_devices() -> None:
    devs = parse_manifest(f"{HEADER}\n{ROW1}\n{ROW2}\n")
    assert [d.name for d in select_devices(devs, None)] == ["pi4", "nuc"]
    assert [d.name for d in select_devices(devs, ["nuc,pi4"])] == ["pi4", "nuc"]
    with pytest.raises(ManifestError, match="unknown device.*zz"):
        select_devices(devs, ["zz"])
