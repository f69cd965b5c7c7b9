"""Our manage.py with the original SilverLine tools (docs/compatibility.md): the original's config
file, option spellings, REST records, error reports and `exited` messages, field for field as
docs/compatibility.md, "Facts about the original tools", records them. The original orchestrator (Django) cannot run here: a
stand-in serves its REST shapes and handles its MQTT requests (original_orchestrator.py); the
broker, the scripts and every message are real."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import pytest

from common.config import load_config
from tests.cli.original_orchestrator import OriginalOrchestrator
from tests.helpers import original as O
from testbed.mqtt import MqttProbe
from testbed.orchestrator import ROOT, OrchestratorProc
from testbed.wait import wait_until

R = "realm"
MGR = "bbbbbbbb-0000-4000-8000-000000000001"
RT_A = "bbbbbbbb-0000-4000-8000-0000000000a1"
RT_B = "bbbbbbbb-0000-4000-8000-0000000000b2"


@pytest.fixture
def orig(broker: Any, tmp_path: Any) -> Iterator[tuple[OriginalOrchestrator, str]]:
    """The stand-in orchestrator with two runtimes, and a config.json as the original's configure
    writes it: its file_store keys, and a `pwd` file that does not exist (a warning, not an error)."""
    o = OriginalOrchestrator(broker.port)
    o.add_runtime(O.rest_runtime(RT_A, "orig.min", MGR, "linux/min/wasmer"))
    o.add_runtime(O.rest_runtime(RT_B, "orig.bench", MGR, "benchmarking"))
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({
        "mqtt": "127.0.0.1", "mqtt_port": broker.port, "use_ssl": False, "mqtt_username": "cli",
        "pwd": str(tmp_path / "mqtt_pwd.txt"), "realm": R, "manifest": None, "domain": "", "username": "cli",
        "http": "127.0.0.1", "http_port": o.http.server_address[1], "file_store": "localhost", "file_store_port": 8001,
        "platform": {"cpu": {"cores": 2, "cpufreq": 2300000000, "target": "x86_64", "cpu": "skylake"},
                     "mem": {"l1i_size": 32768, "l1d_size": 49152, "l2_size": 2097152, "l2_line": 64, "l2_assoc": 16,
                             "l3_size": 272629760, "total": 25275990016}}}))
    try:
        yield o, str(cfg)
    finally:
        o.close()


def manage(cfg: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), args[0], "-c", cfg, *args[1:]], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, f"manage.py {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_run_list_stop_against_the_original_orchestrator(orig: tuple[OriginalOrchestrator, str]) -> None:
    o, cfg = orig
    # run -r NAME with two files and the original's --dirs: one create_batch naming the runtime once
    out = manage(cfg, "run", "-r", "orig.min", "-n", "hello", "-f", "wasm/a.wasm", "wasm/b.wasm", "--dirs", ".",
                 "-a", "x").stdout
    batch = o.requests[-1]
    assert batch["action"] == "create_batch" and batch["type"] == "req" and batch["data"]["parent"] == RT_A
    assert all("parent" not in m for m in batch["data"]["modules"])
    assert [m["file"] for m in batch["data"]["modules"]] == ["wasm/a.wasm", "wasm/b.wasm"]
    assert batch["data"]["modules"][0]["args"]["dirs"] == ["."] and batch["data"]["modules"][0]["args"]["argv"] == ["x"]
    lines = [ln for ln in out.splitlines() if ln.startswith("created hello ")]
    assert len(lines) == 2 and all(ln.endswith(f"-> orig.min ({RT_A})") for ln in lines)
    # list: the original's records (no type, parent as node, one-letter states, no nqueued)
    o.add_module(O.rest_module(O.oid(), "waiting", RT_B, "wasm/c.wasm", status="Q"))
    listing = manage(cfg, "list").stdout
    for needle in ("orig.min", "orig.bench", "linux/min/wasmer", "benchmarking", "2/1", MGR[:8], "wasm/a.wasm", "wasm/c.wasm [Q]"):
        assert needle in listing, (needle, listing)
    # stop with the original's --modules: the original's delete, field for field
    mid = batch["data"]["modules"][0]["uuid"]
    out = manage(cfg, "stop", "--modules", mid).stdout
    delete = o.requests[-1]
    assert {k: delete[k] for k in ("action", "type", "data")} == {"action": "delete", "type": "req",
                                                                  "data": {"type": "module", "uuid": mid}}
    assert f"stopping hello {mid} (state A, runtime {RT_A})" in out


def test_run_reports_what_the_original_refuses_on_proc_log_orchestrator(orig: tuple[OriginalOrchestrator, str]) -> None:
    o, cfg = orig
    r = manage(cfg, "run", "-r", "orig.min", "-n", "dup", "-f", "wasm/a.wasm", "--timeout", "5", check=False)
    assert r.returncode == 1 and "refused by the orchestrator: duplicate module UUID; request ignored" in r.stderr, r.stderr


def reap(p: subprocess.Popen[str], probe: MqttProbe) -> None:
    """End the script if a failed assertion left it running; close its pipes and the probe."""
    if p.poll() is None:
        p.kill()
        p.communicate()
    for f in (p.stdout, p.stderr):
        if f is not None:
            f.close()
    probe.close()


def original_runtime(probe: MqttProbe, orch: OrchestratorProc, rt: str, name: str, kind: str) -> None:
    """Register a manager and runtime of the original with our orchestrator; follow its control topic."""
    for msg in (O.manager_create(MGR, "orig"), O.runtime_create(rt, name, MGR, kind)):
        probe.publish(f"{R}/proc/reg/{msg['data']['uuid']}", msg, qos=2)
    wait_until(lambda: orch.get_status(f"/api/runtimes/{rt}/")[0] == 200, what="original runtime registered")
    probe.subscribe(f"{R}/proc/control/{rt}")


def test_benchmark_against_the_original_orchestrator(orig: tuple[OriginalOrchestrator, str], broker: Any) -> None:
    """`benchmark`: the plan is expanded here and sent as the original's benchmark sends it (one create_batch
    per runtime naming it as `data.parent`, docs/compatibility.md, "The original CLI scripts"); `--wait` follows the `exited`
    messages (the original's string status and our object) and exits 1 when a module failed."""
    o, cfg = orig
    probe = MqttProbe(broker.port)
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "manage.py"), "benchmark", "-c", cfg, "-r", "orig.bench",
                          "orig.min", "-f", "wasm/a.wasm", "wasm/b.wasm", "--engine", "wasmtime", "iwasm-i", "-k", "3",
                          "--limit", "30", "--seed", "7", "--wait", "--timeout", "60"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len([m for m in o.requests if m["action"] == "create_batch"]) == 2, timeout=30,
                   what="two create_batch requests")
        batches = {b["data"]["parent"]: b for b in o.requests}
        assert set(batches) == {RT_A, RT_B} and [m["action"] for m in o.requests] == ["create_batch"] * 2
        mods = []
        for b in batches.values():
            assert b["type"] == "req" and isinstance(b["object_id"], str) and set(b["data"]) == {"modules", "parent"}
            assert len(b["data"]["modules"]) == 4
            for m in b["data"]["modules"]:
                assert "parent" not in m and m["type"] == "module" and m["file"] in ("wasm/a.wasm", "wasm/b.wasm")
                assert m["name"] == os.path.basename(m["file"]).split(".")[0] + "." + m["args"]["engine"]
                a = m["args"]
                assert (a["repeat"], a["limit"], a["dirs"], a["argv"]) == (3, 30.0, ["."], []) and "cell" in a
                mods.append(m)
        # the plan's seeded order, as our orchestrator would expand it (campaigns.expand)
        dry = [json.loads(ln) for ln in manage(cfg, "benchmark", "-r", "orig.bench", "orig.min", "-f", "wasm/a.wasm",
                                                "wasm/b.wasm", "--engine", "wasmtime", "iwasm-i", "--seed", "7",
                                                "--dry-run").stdout.splitlines()]
        assert [m["args"]["cell"] for m in batches[RT_B]["data"]["modules"] + batches[RT_A]["data"]["modules"]] == \
            [d["args"]["cell"] for d in dry]
        # the modules exit: the original's string status, ours, one failing
        for i, m in enumerate(mods):
            rt = RT_B if m in batches[RT_B]["data"]["modules"] else RT_A
            msg = O.exited(m["uuid"]) if i % 2 else O.req("exited", {"type": "module", "uuid": m["uuid"], "status": {
                "reason": "exited", "code": 1 if i == 0 else 0, "error": None}})
            probe.publish(f"{R}/proc/control/{rt}", msg, qos=2)
        out, err = p.communicate(timeout=60)
    finally:
        reap(p, probe)
    assert "Traceback" not in err, err
    assert "keeps no campaigns (--resume, --status, stored outcomes need this project's)" in err, err
    assert "8 cells: 7 done; failed: error 1" in err and p.returncode == 1, (p.returncode, err)
    assert "resume with" not in err, err  # nothing to resume there
    assert len(out.split()) == 1  # the campaign id (in every module's args)


def test_benchmark_campaign_features_need_ours(orig: tuple[OriginalOrchestrator, str]) -> None:
    o, cfg = orig
    for args in (["--status"], ["--status", "x"], ["--resume", "x"]):
        r = manage(cfg, "benchmark", *args, check=False)
        assert r.returncode == 1 and "keeps no benchmark campaigns" in r.stderr, r.stderr
        assert f"--{args[0][2:]} needs this project's orchestrator" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not o.requests


def test_benchmark_wait_reads_the_originals_exited(broker: Any, tmp_path: Any) -> None:
    """`benchmark --wait` with our orchestrator and a runtime of the original, which ends a
    module with `status: "exited"` (a string): the cell is done, nothing crashes."""
    probe = MqttProbe(broker.port)
    with OrchestratorProc(broker.port, str(tmp_path), ka_interval=0.5) as orch:
        original_runtime(probe, orch, RT_B, "orig.bench", "benchmarking")
        p = subprocess.Popen([sys.executable, os.path.join(ROOT, "manage.py"), "benchmark", "-c", orch.config, "-r",
                              "orig.bench", "-f", "wasm/a.wasm", "--engine", "wasmtime", "--wait", "--timeout", "60"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            create = probe.wait_for(f"{R}/proc/control/{RT_B}", lambda m: m.json()["action"] == "create", timeout=30)[0].json()
            probe.publish(f"{R}/proc/control/{RT_B}", O.exited(create["data"]["uuid"]), qos=2)
            out, err = p.communicate(timeout=60)
        finally:
            reap(p, probe)
    assert p.returncode == 0 and "Traceback" not in err, err
    assert "1 cells: 1 done; failed: none" in err, err


def test_run_follow_reads_the_originals_exited(broker: Any, tmp_path: Any) -> None:
    """`run --follow` with our orchestrator and a runtime of the original: its stdout is
    shown and its `exited` (status the string "exited") ends the run with exit code 0."""
    probe = MqttProbe(broker.port)
    with OrchestratorProc(broker.port, str(tmp_path), ka_interval=0.5) as orch:
        original_runtime(probe, orch, RT_A, "orig.min", "linux/min/wasmer")
        p = subprocess.Popen([sys.executable, os.path.join(ROOT, "manage.py"), "run", "-c", orch.config, "-r", "orig.min",
                              "-n", "hello", "-f", "wasm/apps/helloworld.wasm", "--follow", "--timeout", "30"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            create = probe.wait_for(f"{R}/proc/control/{RT_A}", lambda m: m.json()["action"] == "create", timeout=30)[0].json()
            mid = create["data"]["uuid"]
            seen: list[str] = []
            assert p.stdout is not None
            stdout = p.stdout

            def read() -> None:
                for line in iter(stdout.readline, ""):
                    seen.append(line)
            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            # the original runtime's output, until run (which follows once the module is taken) shows it
            deadline = time.monotonic() + 30
            while not any("Hello from the original" in ln for ln in seen) and time.monotonic() < deadline:
                probe.publish(f"{R}/proc/stdio/{mid}", b"Hello from the original\n")
                time.sleep(0.2)
            probe.publish(f"{R}/proc/control/{RT_A}", O.exited(mid), qos=2)
            p.wait(60)
            reader.join(10)
            out, err = "".join(seen), p.stderr.read() if p.stderr else ""
        finally:
            reap(p, probe)
    assert p.returncode == 0 and "Traceback" not in err, (p.returncode, out, err)
    assert "Hello from the original" in out, out


def test_status_reads_the_originals_manifest(orig: tuple[OriginalOrchestrator, str], tmp_path: Any) -> None:
    """The original's `Type` column is a known column, not an engine; as the original,
    only linux/orchestrator devices are pinged."""
    o, cfg = orig
    manifest = tmp_path / "manifest.tsv"
    cols = ["Device", "Type", "Model", "CPU", "Target", "Triple", "Arch", "SMT", "Cgroup", "Memory", "Network", "Storage",
            "iwasm-i", "wasmtime-j"]
    rows = [["orig", "linux", "rpi4", "cortex-a72", "aarch64", "aarch64-unknown-linux-gnu", "armv8", "1", "v2", "4G",
             "eth", "sd", "x", ""],
            ["mcu1", "embedded", "nrf", "cortex-m4", "thumbv7em", "thumbv7em-none-eabi", "armv7", "0", "", "256K", "ble",
             "", "", ""]]
    manifest.write_text("\n".join("\t".join(r) for r in [cols, *rows]) + "\n")
    from common.manifest import load_manifest
    devs = load_manifest(str(manifest))
    assert [d.type for d in devs] == ["linux", "embedded"] and devs[0].engines == ("iwasm-i",)
    out = manage(cfg, "status", "-m", str(manifest)).stdout
    row = next(ln for ln in out.splitlines() if " orig " in ln)
    assert "linux" in row and RT_A in row and "up" in row, out  # runtime orig.min belongs to device orig
    mcu = next(ln for ln in out.splitlines() if " mcu1 " in ln)
    assert "embedded" in mcu and "n/a" in mcu, out


def test_configure_accepts_the_originals_options(tmp_path: Any) -> None:
    """`--mqtt_user --mqtt_pwd --file_store --http HOST:PORT -c CPU` as the original's configure."""
    out = tmp_path / "config.json"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), "configure", "-o", str(out), "--mqtt_user", "cli",
                        "--mqtt_pwd", "../mqtt_pwd.txt", "--file_store", "files.local:8001", "--http", "orch.local:8000",
                        "-c", "skylake", "-t", "x86_64-unknown-linux-gnu"], cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["mqtt_username"] == "cli" and data["pwd"] == os.path.abspath(os.path.join(str(tmp_path), "../mqtt_pwd.txt"))
    assert (data["http"], data["http_port"], data["file_store"], data["file_store_port"]) == ("orch.local", 8000, "files.local", 8001)
    assert data["platform"]["cpu"]["cpu"] == "skylake" and data["platform"]["cpu"]["target"] == "x86_64-unknown-linux-gnu"
    assert load_config(str(out)).http_port == 8000  # the original-only keys are accepted
    for script, alias in (("configure", "--mqtt_pwd"), ("configure", "--mqtt_user"), ("configure", "--file_store"),
                          ("run", "--dirs"), ("stop", "--modules")):
        h = subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), script, "-h"], capture_output=True, text=True)
        assert alias in h.stdout, (script, alias)


def test_config_notes_and_missing_password_file(tmp_path: Any, caplog: Any) -> None:
    """Original-only keys are a note; a missing pwd file a warning, no password."""
    import logging
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"file_store": "localhost", "file_store_port": 8001, "mqtt_username": "cli",
                               "pwd": str(tmp_path / "nope.txt")}))
    with caplog.at_level(logging.INFO, logger="cfg"):
        c = load_config(str(cfg))
        assert c.password() is None
    text = caplog.text
    assert "key 'file_store' is the original's file store host" in text and "does not use it" in text
    assert "password file" in text and "does not exist; connecting without a password" in text
    cfg.write_text(json.dumps({"file_store_port": "high"}))
    with pytest.raises(Exception, match="file_store_port"):
        load_config(str(cfg))
