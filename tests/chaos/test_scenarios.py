"""Every chaos scenario in its small `test` size (the full figures come from `make chaos`).

Each scenario runs real processes (mosquitto, nodes, the orchestrator, wasm modules) and returns
its figures and the promises it saw broken; a test passes when none was broken.
"""
from __future__ import annotations

import importlib
from typing import Any

import pytest

from chaos.base import SIZES, Outcome

SIZE = SIZES["test"]


def scenario(name: str) -> Outcome:
    out: Outcome = importlib.import_module(f"chaos.{name}").run(SIZE)
    assert out.failures == [], f"{name}: {out.failures}\nfigures: {out.figures}"
    return out


def test_worker_sigkills_restart_report_and_leak_nothing() -> None:
    f = scenario("worker_kills").figures
    assert f["worker_restarts"] == f["worker_kills"] == SIZE.worker_kills
    assert f["modules_unreported"] == 0 and f["leaked_ipc_objects"] == 0


def test_broker_loss_reregisters_and_loses_no_qos1_control_message() -> None:
    f = scenario("broker_loss").figures
    assert f["broker_reregister_s"] <= 5.0 and f["control_lost"] == 0 and f["modules_kept_running"] is True


def test_supervisor_sigkill_leaves_no_orphan_and_resurrects() -> None:
    f = scenario("supervisor_kill").figures
    assert f["orphans_after_supervisor_kill"] == 0
    assert f["modules_resurrected"] == f["modules_expected"]


def test_orchestrator_restart_keeps_nodes_and_queue() -> None:
    f = scenario("orchestrator_restart").figures
    assert f["orchestrator_state_intact"] == f["orchestrator_restarts"] == 2


def test_bad_input_never_crashes_and_always_errors() -> None:
    f = scenario("fuzz").figures
    assert f["crashes"] == 0
    assert f["control_node.silent"] == 0 and f["control_orch.silent"] == 0 and f["channel_open.unanswered"] == 0
    assert f["ipc_records.supervisor_alive"] is True and f["rest.unclear_errors"] == 0


def test_sandbox_lets_nothing_out() -> None:
    f = scenario("sandbox").figures
    assert f["sandbox_escapes"] == 0 and f["sandbox_attempts"] >= 60
    assert f["acl_refusals_expected"] == f["acl_refusals_seen"] >= 8
    assert {k: v["reason"] for k, v in f["limit_causes"].items()} == {k: "limit" for k in f["limit_causes"]}
    assert set(f["path_attempts_by_kind"]) >= {"linux", "linux/min/wasmtime", "benchmarking", "benchmarking/seeded",
                                              "benchmarking/interference", "benchmarking/opcodes"}


def test_tls_and_passwords_wrong_credentials_retry_not_crash() -> None:
    f: dict[str, Any] = scenario("security").figures
    assert f["crashes"] == 0 and "tls_password_register_s" in f


def test_json_summary_has_the_issue_keys(capsys: pytest.CaptureFixture[str]) -> None:
    from chaos import __main__ as cli
    keys = ["worker_kills", "worker_restarts", "modules_unreported", "leaked_ipc_objects", "broker_reregister_s",
            "control_lost", "orphans_after_supervisor_kill", "fuzz_cases", "crashes", "sandbox_escapes"]
    assert set(keys) <= set(cli.SUMMARY)
    with pytest.raises(SystemExit):
        cli.main(["--only", "nonesuch"])
    assert "invalid choice" in capsys.readouterr().err


def test_fleet_heals_itself() -> None:
    """Any start order, orchestrator with an empty store, broker restart, graceful and SIGKILL
    restarts, duplicate starts, a channel across a mosquitto bridge."""
    f = scenario("fleet").figures
    assert f["register_after_orchestrator_start_s_max"] <= 5 and f["reregister_after_fresh_store_s_max"] <= 5
    assert f["duplicate_executions"] == 0 and f["last_wills_on_clean_stop"] == 0 and f["last_wills_on_sigkill"] == 2
    assert f["resurrected_after_graceful_restart"] == f["graceful_restart_modules"] > 0
    assert f["bridge_channel_ok"] is True and f["bridge_duplicates"] == 0


def test_fleet_security_refuses_every_attack() -> None:
    f: dict[str, Any] = scenario("fleet_security").figures
    assert f["attacks_succeeded"] == 0 and f["attacks_refused"] == f["attacks_tried"] >= 20
    assert set(f["attacks"]) >= {"create_on_another_node", "forged_manager_delete", "retained_create", "squat_a_runtime_uuid",
                                 "squat_a_runtime_name", "take_over_the_orchestrators_session", "rest_env_values",
                                 "module_reads_the_node_password", "acl_uuid_of_two_accounts", "read_another_nodes_stdio_or_control"}
