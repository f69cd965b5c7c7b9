"""cmd, put, get, version, start/kill end to end against a real OpenSSH server (see conftest)."""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster.conftest import Cluster


def device_line(out: str, name: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith(name + " ")]
    assert len(lines) == 1, f"expected one result line for {name}:\n{out}"
    return lines[0]


def test_cmd_fills_templates_and_reports_unreachable_while_others_succeed(cluster: Cluster) -> None:
    rc, out, _ = cluster.run("cmd", "echo I am {name} on {arch} cgroup {cgroup} host {fullname}")
    assert rc == 1  # dev3 is unreachable
    assert re.search(r"ok\s+exit 0", device_line(out, "dev1"))
    assert re.search(r"ok\s+exit 0", device_line(out, "dev2"))
    assert "UNREACHABLE" in device_line(out, "dev3") and "connection refused" in device_line(out, "dev3")
    assert "dev1| I am dev1 on x86_64 cgroup cg1 host dev1" in out
    assert "dev2| I am dev2 on x86_64 cgroup cg2 host dev2" in out
    assert "3 device(s): 2 ok, 1 unreachable" in out


def test_cmd_exit_status_per_device_and_device_subset(cluster: Cluster) -> None:
    mark = cluster.root / "ran"
    mark.mkdir()
    rc, out, _ = cluster.run("cmd", "-d", "dev1,dev2", f"touch {mark}/{{name}}; echo oops >&2; test {{name}} = dev1")
    assert rc == 1
    assert "exit 0" in device_line(out, "dev1")
    assert re.search(r"FAILED\s+exit 1", device_line(out, "dev2"))
    assert "dev2!| oops" in out and "dev3" not in out
    assert sorted(os.listdir(mark)) == ["dev1", "dev2"]

    rc, out, _ = cluster.run("cmd", "-d", "dev2", f"rm {mark}/{{name}}")
    assert rc == 0 and sorted(os.listdir(mark)) == ["dev1"]


def test_sync_stops_at_first_failure_unless_ignore_err(cluster: Cluster) -> None:
    rc, out, _ = cluster.run("cmd", "--sync", "test {name} != dev1")
    assert rc == 1
    assert "FAILED" in device_line(out, "dev1")
    assert "SKIPPED" in device_line(out, "dev2") and "SKIPPED" in device_line(out, "dev3")
    rc, out, _ = cluster.run("cmd", "--sync", "--ignore_err", "test {name} != dev1")
    assert rc == 0  # --ignore_err: went on, and the exit status ignores the failures
    assert "FAILED" in device_line(out, "dev1") and "ok" in device_line(out, "dev2")
    assert "UNREACHABLE" in device_line(out, "dev3")
    # the result lines come in manifest order with --sync
    assert [ln.split()[0] for ln in out.splitlines() if ln[:3] == "dev"] == ["dev1", "dev2", "dev3"]


def test_put_then_get_round_trip(cluster: Cluster) -> None:
    src = cluster.root / "payload"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 40)
    remote = cluster.root / "remote"
    remote.mkdir()
    rc, out, _ = cluster.run("put", str(src), f"{remote}/{{name}}-payload")
    assert rc == 1 and "UNREACHABLE" in device_line(out, "dev3")
    for d in ("dev1", "dev2"):
        assert "ok" in device_line(out, d)
        assert (remote / f"{d}-payload" / "a.txt").read_text() == "alpha\n"
        assert (remote / f"{d}-payload" / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 40
    (remote / "dev2-payload" / "a.txt").write_text("changed on dev2\n")

    local = cluster.root / "fetched"
    rc, out, _ = cluster.run("get", "-d", "dev1,dev2", f"{remote}/{{name}}-payload/a.txt", str(local))
    assert rc == 0, out
    assert (local / "dev1" / "a.txt").read_text() == "alpha\n"
    assert (local / "dev2" / "a.txt").read_text() == "changed on dev2\n"

    rc, out, _ = cluster.run("get", "-d", "dev1", f"{remote}/{{name}}-payload", str(local / "{name}.tree"))
    assert rc == 0, out
    assert (local / "dev1.tree" / "sub" / "b.bin").stat().st_size == 256 * 40


def test_get_of_a_missing_file_fails_cleanly(cluster: Cluster) -> None:
    rc, out, _ = cluster.run("get", "-d", "dev1", str(cluster.root / "nothing-here"), str(cluster.root / "x"))
    assert rc == 1
    line = device_line(out, "dev1")
    assert "FAILED" in line and "nothing-here" in line


def test_version_reports_the_commit_hash_of_each_checkout(cluster: Cluster) -> None:
    hashes = {}
    for d in ("dev1", "dev2"):
        repo = cluster.root / f"checkout-{d}"
        repo.mkdir()
        git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git[:3], "init", "-q"], check=True)
        (repo / "f").write_text(d)
        subprocess.run([*git, "add", "f"], check=True)
        subprocess.run([*git, "commit", "-qm", f"on {d}"], check=True)
        hashes[d] = subprocess.run([*git[:3], "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    rc, out, _ = cluster.run("version", "--path", str(cluster.root / "checkout-{name}"))
    assert rc == 1  # dev3 unreachable
    for d, h in hashes.items():
        assert re.search(rf"^{d}\s+{h} \d{{4}}-", out, re.M), out
    assert "2 different versions" in out
    assert "UNREACHABLE" in device_line(out, "dev3")
    rc, out, _ = cluster.run("version", "-d", "dev1", "--path", str(cluster.root / "no-checkout"))
    assert rc == 1 and "no SilverLine checkout" in out


STUB_START = """\
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: (open("stopped", "w").write("TERM"), sys.exit(0)))
signal.signal(signal.SIGUSR1, lambda *a: (open("stopped", "w").write("USR1"), sys.exit(0)))
# written once the handlers are in place (renamed into place: a reader never sees it half-written)
open("started.args.tmp", "w").write(" ".join(sys.argv[1:]))
os.rename("started.args.tmp", "started.args")
while True:
    time.sleep(0.2)
"""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def test_start_detached_then_kill(cluster: Cluster) -> None:
    checkouts = {d: cluster.root / f"node-{d}" for d in ("dev1", "dev2")}
    for c in checkouts.values():
        c.mkdir()
        (c / "start.py").write_text(STUB_START)
    pids: list[int] = []
    try:
        rc, out, _ = cluster.run("start", "-d", "dev1,dev2", "--path", str(cluster.root / "node-{name}"), "--", "-r", "test/reg", "-g", "{cgroup}")
        assert rc == 0, out
        for d, c in checkouts.items():
            assert "started pid" in out
            pids.append(int((c / ".silverline.pid").read_text()))
            assert _pid_alive(pids[-1])
            deadline = time.monotonic() + 20
            while not (c / "started.args").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        assert (checkouts["dev1"] / "started.args").read_text() == "-n dev1 -r test/reg -g cg1"
        assert (checkouts["dev2"] / "started.args").read_text() == "-n dev2 -r test/reg -g cg2"
        rc, out, _ = cluster.run("start", "-d", "dev1", "--path", str(cluster.root / "node-{name}"))
        assert rc == 0 and "already running" in out

        rc, out, _ = cluster.run("kill", "-d", "dev1,dev2", "--path", str(cluster.root / "node-{name}"))
        assert rc == 0, out
        assert out.count("stopped pid") == 2
        for d, c in checkouts.items():
            assert (c / "stopped").read_text() == "TERM" and not (c / ".silverline.pid").exists()
        rc, out, _ = cluster.run("kill", "-d", "dev1", "--path", str(cluster.root / "node-{name}"))
        assert rc == 0 and "not running" in out
        # --end-modules: SIGUSR1, the node's "stop and end the modules"
        (checkouts["dev1"] / "started.args").unlink()
        rc, out, _ = cluster.run("start", "-d", "dev1", "--path", str(cluster.root / "node-{name}"))
        assert rc == 0, out
        pids.append(int((checkouts["dev1"] / ".silverline.pid").read_text()))
        deadline = time.monotonic() + 20
        while not (checkouts["dev1"] / "started.args").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        rc, out, _ = cluster.run("kill", "-d", "dev1", "--end-modules", "--path", str(cluster.root / "node-{name}"))
        assert rc == 0 and "stopped pid" in out, out
        assert (checkouts["dev1"] / "stopped").read_text() == "USR1"
    finally:
        for pid in pids:
            if _pid_alive(pid):
                os.kill(pid, 9)


@pytest.mark.parametrize("args, message", [
    (["cmd", "-d", "nosuch", "true"], "unknown device(s) nosuch"),
    (["cmd", "echo {nosuch}"], "unknown field {nosuch}"),
    (["put", "/nonexistent/file", "x"], "does not exist"),
    (["cmd", "--timeout", "zero", "true"], "--timeout must be a number"),
])
def test_bad_input_is_one_clear_line_before_any_connection(cluster: Cluster, args: list[str], message: str) -> None:
    rc, out, err = cluster.run(*args)
    assert rc == 2 and message in err and out == ""


def test_bad_manifest_names_file_and_line(cluster: Cluster) -> None:
    bad = cluster.root / "bad.tsv"
    bad.write_text(Path(cluster.manifest).read_text().replace("\tx\t\n", "\tyes\t\n", 1))
    cluster.manifest = str(bad)
    rc, _, err = cluster.run("cmd", "true")
    assert rc == 2 and f"{bad}: line 2, column 12 (wasmtime)" in err


def test_dry_run_shows_commands_and_connects_nowhere(cluster: Cluster) -> None:
    rc, out, _ = cluster.run("reboot", "--dry_run")
    assert rc == 0 and out.count("systemctl reboot") == 3
    rc, out, _ = cluster.run("cmd", "--dry_run", "-d", "dev3", "ls /sys/fs/cgroup/{cgroup}")
    assert rc == 0 and out.strip() == "dev3: ls /sys/fs/cgroup/cg3"


def test_sudo_reads_the_password_from_the_environment_and_never_hands_it_to_the_command(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SL_SUDO_PASSWORD", "s3cret-pw")
    rc, out, _ = cluster.run("cmd", "--sudo", "-d", "dev1,dev2", "id -u; cat; echo done {name}")
    assert rc == 0, out
    assert "dev1| 0" in out and "dev2| done dev2" in out
    assert "s3cret-pw" not in out


def test_update_pulls_and_reinstalls(cluster: Cluster) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    origin = cluster.root / "origin"
    subprocess.run([*git, "init", "-q", str(origin)], check=True)
    (origin / "f").write_text("v1")
    # stands in for the project's Makefile: `make env` installs the pulled checkout's lock
    (origin / "Makefile").write_text("env:\n\tcat f > env.ran\n")
    subprocess.run([*git, "-C", str(origin), "add", "f", "Makefile"], check=True)
    subprocess.run([*git, "-C", str(origin), "commit", "-qm", "v1"], check=True)
    clone = cluster.root / "clone-dev1"
    subprocess.run([*git, "clone", "-q", str(origin), str(clone)], check=True)
    (origin / "f").write_text("v2")
    subprocess.run([*git, "-C", str(origin), "commit", "-qam", "v2"], check=True)
    head = subprocess.run(["git", "-C", str(origin), "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    rc, out, _ = cluster.run("update", "-d", "dev1", "--path", str(cluster.root / "clone-{name}"))
    assert rc == 0, out
    assert (clone / "f").read_text() == "v2" and f"now at {head}" in out
    assert (clone / "env.ran").read_text() == "v2"  # make env ran after the pull
