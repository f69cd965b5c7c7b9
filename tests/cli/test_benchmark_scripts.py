"""manage.py benchmark / report / engines / cpufreq: end to end with a real broker, orchestrator,
node and collector; report renders its table and plots from the collected files."""
from __future__ import annotations

import json
import os
import sys

import pytest

from cli import benchmark, cpufreq, engines as engines_cli, report
from collector import Collector, ProfileStore
from testbed.node import running_node


pytestmark = pytest.mark.orchestrator(ka_interval=0.5)


def test_benchmark_collect_report_end_to_end(broker, orch, wasm, wasm_root, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"mqtt": "127.0.0.1", "mqtt_port": broker.port, "http": "127.0.0.1",
                               "http_port": orch.http_port}))
    data = tmp_path / "data"
    col = Collector(ProfileStore(str(data)), "127.0.0.1", broker.port).start()
    try:
        with running_node(broker, name="bn", runtimes=["benchmarking", "benchmarking/if"], reg_timeout=5,
                          extra_args=["--module-root", wasm_root]) as node:
            names = list(node.runtime_uuids)
            bench = [n for n in names if n.endswith(".benchmarking")][0]
            inter = [n for n in names if n.endswith(".if") or n.endswith(".interference")][0]
            rc = benchmark.main(["-c", str(cfg), "-f", wasm["spin"], "-f", wasm["memory"], "-r", bench,
                                 "--engine", "wasmtime-aot", "--engine", "wasmtime", "-k", "3", "--argv", "3",
                                 "--wait", "--timeout", "240"])
            cap = capsys.readouterr()
            assert rc == 0, cap.err
            assert "4 cells: 4 done; failed: none" in cap.err  # 1 runtime x 2 files x 2 engines
            if len(os.sched_getaffinity(0)) >= 2:
                rc = benchmark.main(["-c", str(cfg), "-f", wasm["spin"], "-f", wasm["spin"], "-r", inter, "--interference", "2",
                                     "--engine", "wasmtime-aot", "--argv", "3", "--limit", "1.5", "--wait", "--timeout", "120"])
                assert rc == 0
        deadline_files = 2 * (4 + (1 if len(os.sched_getaffinity(0)) >= 2 else 0))  # the seed's layout and ours
        import time
        end = time.monotonic() + 20
        while len(col.store.written) < deadline_files and time.monotonic() < end:
            time.sleep(0.1)
        assert len(col.store.written) == deadline_files
    finally:
        col.stop()
    capsys.readouterr()
    plots = tmp_path / "plots"
    assert report.main([str(data), "-o", str(plots), "-c", str(cfg)]) == 0
    table = capsys.readouterr().out
    assert "median ms" in table and "99% CI ms" in table and "spin.wasm:3" in table and "memory.wasm:3" in table
    rows = [ln for ln in table.splitlines() if ln.startswith(("spin.wasm", "memory.wasm"))]
    assert any(" wasmtime-a " in r and " alone " in r for r in rows)  # engines by canonical name (wasmtime-aot)
    assert os.path.exists(plots / "walltime_spin.wasm_3.png") and os.path.exists(plots / "walltime_memory.wasm_3.png")
    assert os.path.exists(plots / "heatmap.png")  # workload x engine
    assert report.main([str(data), "--json", "--no-plots", "-c", str(cfg)]) == 0
    js = json.loads(capsys.readouterr().out)
    spin = [r for r in js["rows"] if r["module"] == "spin.wasm:3" and r["kind"] == "alone"]
    assert {r["engine"] for r in spin} == {"wasmtime-j", "wasmtime-a"} and all(r["n"] == 3 for r in spin)
    for r in spin:  # 3 samples: too few for a 99 % interval of the median
        assert r["ci99_ms"] == [None, None] and r["phases_median_ms"]["compile_ns"] >= 0
    rel = {(h["module"], h["engine"]): h["relative"] for h in js["heatmap"]}
    assert rel[("spin.wasm:3", "wasmtime-a")] == 1.0  # the baseline: the first engine by name
    # two engines cell by cell, and the one-page HTML
    assert report.main([str(data), "--engines", "wasmtime,wasmtime-aot", "--html", str(tmp_path / "r.html"),
                        "-o", str(plots), "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "engine wasmtime-a against engine wasmtime-j" in out  # the aliases given, the canonical names shown
    assert any(v in out for v in ("faster", "slower", "not distinguishable"))
    page = (tmp_path / "r.html").read_text()
    assert "<h2>Cells</h2>" in page and "<h2>Comparison</h2>" in page and page.count("data:image/png;base64,") >= 3
    if len(os.sched_getaffinity(0)) >= 2:
        assert os.path.exists(plots / "interference.png")
        inter_rows = [r for r in js["rows"] if r["kind"] == "interference-2"]
        assert inter_rows and inter_rows[0]["slowdown"] is not None


def test_benchmark_dry_run_and_errors(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"a.wasm": ["1", "2 x"], "b.wasm": ["3"]}))
    # the seed's several values after one flag; --norepeat: one cell per argument list, run once
    assert benchmark.main(["--dry-run", "-f", "/m/a.wasm", "/m/b.wasm", "-r", "R1", "R2", "--engine", "wasmtime",
                           "native", "--argfile", str(argfile), "--norepeat", "--shuffle", "--eshuffle",
                           "--ilimit", "2", "-d", "data", "in"]) == 0
    msgs = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert len(msgs) == 2 * 2 * (2 + 1)
    a = sorted((m["args"]["argv"] for m in msgs if m["file"] == "/m/a.wasm" and m["parent"] == "R1"
                and m["args"]["engine"] == "native"))
    assert a == [["1"], ["2", "x"]] and msgs[0]["args"]["repeat"] == 1 and msgs[0]["args"]["ilimit"] == 2.0
    assert all(m["args"]["dirs"] == ["data", "in"] for m in msgs)
    assert len({m["args"]["cell"] for m in msgs}) == 12 and {m["name"] for m in msgs} >= {"a.native", "b.wasmtime-j"}
    # default: the suite's directory `.` (as the original's --dir=.); --no-dir: none
    assert benchmark.main(["--dry-run", "-f", "a.wasm", "-r", "R"]) == 0
    assert json.loads(capsys.readouterr().out)["args"]["dirs"] == ["."]
    assert benchmark.main(["--dry-run", "-f", "a.wasm", "-r", "R", "--no-dir"]) == 0
    assert "dirs" not in json.loads(capsys.readouterr().out)["args"]
    assert benchmark.main(["--dry-run", "-f", "a", "-r", "R", "-k", "zero"]) == 2  # a usage mistake (common/usage.py)
    assert "--repeat must be a whole number" in capsys.readouterr().err
    assert benchmark.main(["--dry-run", "-f", "a", "-r", "R", "--norepeat"]) == 1
    assert "--norepeat needs --argfile" in capsys.readouterr().err


def test_engines_and_cpufreq(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert engines_cli.main(["--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["wasmtime-j"]["available"] and "iwasm-i" in table and table["native"]["kind"] == "native"
    # no cpufreq in sysfs: a clear message
    assert cpufreq.main(["--sysfs", str(tmp_path / "nothing"), "-g", "performance"]) == 1
    assert "no cpufreq interface" in capsys.readouterr().err
    # a cpufreq tree (the kernel's file layout) gets written
    root = tmp_path / "cpu"
    for n in (0, 1):
        d = root / f"cpu{n}" / "cpufreq"
        d.mkdir(parents=True)
        for k, v in {"scaling_governor": "ondemand", "scaling_available_governors": "ondemand performance powersave",
                     "cpuinfo_min_freq": "800000", "cpuinfo_max_freq": "3000000", "scaling_min_freq": "800000",
                     "scaling_max_freq": "3000000", "scaling_cur_freq": "1200000"}.items():
            (d / k).write_text(v + "\n")
    (root / "cpufreq").mkdir()
    (root / "cpufreq" / "boost").write_text("1\n")
    assert cpufreq.main(["--sysfs", str(root), "-g", "performance", "--max", "1.8GHz", "-b", "off", "--cpus", "1"]) == 0
    assert (root / "cpu1" / "cpufreq" / "scaling_governor").read_text() == "performance"
    assert (root / "cpu0" / "cpufreq" / "scaling_governor").read_text().strip() == "ondemand"
    assert (root / "cpu1" / "cpufreq" / "scaling_max_freq").read_text() == "1800000"
    assert (root / "cpufreq" / "boost").read_text() == "0"
    assert cpufreq.main(["--sysfs", str(root), "--max", "9GHz"]) == 1
    assert "outside the hardware range" in capsys.readouterr().err
    assert cpufreq.main(["--sysfs", str(root), "-g", "turbo"]) == 1
    assert "not available" in capsys.readouterr().err
    assert cpufreq.main(["--sysfs", str(root), "--reset", "--show"]) == 0
    assert "cpu1" in capsys.readouterr().out


def test_report_errors(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert report.main([str(tmp_path / "missing")]) == 1
    assert "is not a directory" in capsys.readouterr().err
    assert report.main([str(tmp_path)]) == 1
    assert "no benchmark data" in capsys.readouterr().err


def test_index_feeds_benchmark(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from cli import index

    for p in ("wasm/polybench/2mm.wasm", "wasm/polybench/3mm.wasm", "wasm/polybench/common/util.wasm", "wasm/mibench/qsort.wasm"):
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_bytes(b"\0asm")
    assert index.main(["-p", str(tmp_path), "-d", "wasm", "-r", "polybench=pb", "mibench=mb", "-n", "2"]) == 0
    files = capsys.readouterr().out.split()
    assert files == ["wasm/mb/qsort.wasm", "wasm/pb/2mm.wasm"]  # sorted, no `common`, both substitutions, limit
    # the original's documented use: `benchmark -f $(index ...)` with several runtimes after one -r
    assert benchmark.main(["--dry-run", "-f", *files, "-r", "dev1.benchmarking", "dev2.benchmarking", "--engine", "wasmtime"]) == 0
    msgs = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert sorted((m["parent"], m["file"]) for m in msgs) == sorted(
        (r, f) for r in ("dev1.benchmarking", "dev2.benchmarking") for f in files)
    assert index.main(["-p", str(tmp_path), "-n", "many"]) == 1
    assert "--limit must be whole numbers, got None / None / 'many'" in capsys.readouterr().err
