"""Issue #25: a node or orchestrator configured for a broker beyond loopback without credentials (or
TLS) says so at start, in one plain line; loopback brokers (make run) need nothing."""
from __future__ import annotations

import logging
from typing import Any

from common.config import Config
from common.exposure import exposure, warn_unauthenticated


def test_loopback_needs_nothing() -> None:
    for host in ("localhost", "127.0.0.1", "::1", "[::1]", "127.0.1.1"):
        assert exposure(Config(mqtt=host)) is None


def test_beyond_loopback_without_credentials_or_tls_is_named(caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="mq")
    assert exposure(Config(mqtt="broker.lab")) == "no credentials (mqtt_username, pwd) and no TLS (use_ssl)"
    assert exposure(Config(mqtt="10.0.0.5", mqtt_username="n1")) == "no TLS (use_ssl)"
    assert exposure(Config(mqtt="10.0.0.5", mqtt_username="n1", use_ssl=True)) is None
    assert warn_unauthenticated(Config(mqtt="broker.lab", mqtt_port=1883), "node n1")
    (rec,) = caplog.records
    assert "node n1: broker broker.lab:1883 is beyond loopback" in rec.getMessage()
    assert "anyone who reaches the broker can create modules" in rec.getMessage() and "\n" not in rec.getMessage()
    assert not warn_unauthenticated(Config(mqtt="127.0.0.1"), "orchestrator")


def test_secrets_inside_a_module_root_are_named(tmp_path: Any, caplog: Any) -> None:
    from common.exposure import secrets_in_roots, warn_secrets_in_roots
    root = tmp_path / "mods"
    (root / "state").mkdir(parents=True)
    other = tmp_path / "etc" / "config.json"
    assert secrets_in_roots([str(root)], [str(root / "state"), str(other)]) == [(str(root), str(root / "state"))]
    caplog.set_level(logging.WARNING, logger="mq")
    assert warn_secrets_in_roots([str(root)], [str(root / "pw.txt"), "", str(other)], "node n1") == 1
    assert "pw.txt lies inside the module root" in caplog.records[0].getMessage()


def test_the_node_warns_at_start_about_a_state_dir_in_its_module_root(tmp_path: Any, caplog: Any) -> None:
    from supervisor.cli import build_settings
    caplog.set_level(logging.WARNING)
    s = build_settings(["-n", "n1", "-r", "test/echo", "--module-root", str(tmp_path), "--state-dir", str(tmp_path / "st"),
                        "--mqtt", "127.0.0.1:1883"])
    assert s is not None
    assert any("lies inside the module root" in r.getMessage() and "st" in r.getMessage() for r in caplog.records)
