"""common/jsonfile.read_object: the object of a JSON file, or one line naming the file and the fault."""
from __future__ import annotations

from pathlib import Path

import pytest

from common.jsonfile import JsonFileError, read_object


def test_an_object_is_read(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    p.write_text('{"a": [1, 2], "b": "é"}', encoding="utf-8")
    assert read_object(str(p)) == {"a": [1, 2], "b": "é"}


@pytest.mark.parametrize("content, says", [
    (None, "cannot read: No such file or directory"),
    (b'{"a": 1,}', "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 9"),
    (b'\xff\xfe{}', "not valid JSON: not UTF-8 text"),
    (b'[1, 2]', "expected an object mapping file -> arguments, got list"),
])
def test_each_fault_is_one_line_naming_the_file(tmp_path: Path, content: bytes | None, says: str) -> None:
    p = tmp_path / "args.json"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(JsonFileError) as e:
        read_object(str(p), "an object mapping file -> arguments")
    text = str(e.value)
    assert text.startswith(f"{p}: {says}") and "\n" not in text, text
