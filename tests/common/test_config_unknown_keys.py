"""An unknown config key is not silently ignored: a warning naming the file, the key and the
closest known key (the typo `mqtt_prot` was ignored and the node used port 1883)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from common.config import load_config


def test_typo_warns_with_the_closest_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"mqtt_prot": 1884, "realm": "r", "runtimes": {}, "file_store": "x"}))
    with caplog.at_level(logging.WARNING, logger="cfg"):
        c = load_config(str(cfg))
    assert c.mqtt_port == 1883 and c.realm == "r"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{cfg}: unknown key 'mqtt_prot' ignored; did you mean 'mqtt_port'?"]


def test_nothing_close_lists_the_known_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"zzzz": 1}))
    with caplog.at_level(logging.WARNING, logger="cfg"):
        load_config(str(cfg))
    (w,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "unknown key 'zzzz' ignored (known keys: " in w and "mqtt_port" in w
