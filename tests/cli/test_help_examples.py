"""Every example of every `-h` text runs: `manage.py SCRIPT -h` and `start.py -h`, section
`Examples:`. Cluster examples run against a real sshd whose devices carry the examples' names
(pi4, nuc); `start` examples render their templates per device and the rendered node command
line must be one `start.py` accepts (the old `-g {cgroup}` example rendered to `-g v2`). Module
examples (run, stop) run against a real broker, orchestrator and node `node1` (runtime linux)."""
from __future__ import annotations

import glob
import importlib
import json
import re
import uuid
import shlex
from pathlib import Path
from typing import Iterator

import pytest

import supervisor.cli
from cli import SCRIPTS, _register
from cluster.options import load_context, parse
from common.manifest import COLUMNS
from tests.cluster.conftest import ROWS
from tests.cluster.sshd import Sshd
from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc

MODULE_SCRIPTS = ("apply", "deployments", "inspect", "logs", "run", "stop")

DEVICES = ("pi4", "nuc")


def examples(doc: str) -> list[str]:
    m = re.search(r"^Examples:\n((?:[ \t]+\S.*\n?)+)", doc, re.M)
    return [ln.strip() for ln in m.group(1).splitlines() if ln.strip()] if m else []


def all_examples() -> list[tuple[str, str]]:
    _register()
    out = []
    for name in sorted(SCRIPTS):
        doc = importlib.import_module(f"cli.{SCRIPTS[name]}").__doc__ or ""
        out += [(name, ex) for ex in examples(doc)]
    out += [("start.py", ex) for ex in examples(supervisor.cli.__doc__ or "")]
    return out


EXAMPLES = all_examples()


def test_examples_are_found() -> None:
    assert {name for name, _ in EXAMPLES} >= {"cmd", "start"}, EXAMPLES


@pytest.fixture(scope="module")
def devices(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sshd, str]]:
    s = Sshd(devices=DEVICES, unreachable=())
    manifest = tmp_path_factory.mktemp("examples") / "manifest.tsv"
    rows = [(DEVICES[i], *ROWS[i][1:]) for i in range(len(DEVICES))]
    manifest.write_text("\n".join(["\t".join([*COLUMNS, "wasmtime", "wasmer"])] + ["\t".join(r) for r in rows]) + "\n")
    try:
        s.start()
        yield s, str(manifest)
    finally:
        s.close()


@pytest.fixture(scope="module")
def node1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrchestratorProc]:
    with Mosquitto() as broker, OrchestratorProc(broker.port, str(tmp_path_factory.mktemp("orch")), ka_interval=2.0) as orch, \
            NodeProcess(broker.port, name="node1", runtimes=["linux"], reg_timeout=5):
        yield orch


def is_cluster_script(script: str) -> bool:
    """A script over SSH takes the cluster scripts' common options (cluster/options.py)."""
    doc = importlib.import_module(f"cli.{SCRIPTS[script]}").__doc__ or ""
    return "--ssh_config" in doc


MODULE_EXAMPLES = [(s, e) for s, e in EXAMPLES if s in MODULE_SCRIPTS]
CLUSTER_EXAMPLES = [(s, e) for s, e in EXAMPLES if s not in MODULE_SCRIPTS and is_cluster_script(s)]
LOCAL_EXAMPLES = [(s, e) for s, e in EXAMPLES if s not in MODULE_SCRIPTS and not is_cluster_script(s)]


def prepare_acl(words: list[str], root: Path) -> None:
    """The node identity files an `acl` example names (as start.py writes them)."""
    for w in words:
        if w.endswith(".json"):
            pattern = Path(w)
            paths = [pattern.with_name(n) for n in ("dev1.json", "dev2.json")] if "*" in w else [pattern]
            for p in paths:
                p = p if p.is_absolute() else root / p
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(json.dumps({"manager": str(uuid.uuid4()), "runtimes": {p.stem: str(uuid.uuid4())}}))


PREPARE = {"acl": prepare_acl}


@pytest.mark.parametrize("script,example", LOCAL_EXAMPLES, ids=[e for _, e in LOCAL_EXAMPLES])
def test_local_example_runs(script: str, example: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    """A script that works on local files: run in a scratch directory, absolute paths moved under it,
    the shell's globbing done as a shell would."""
    words = shlex.split(example)
    assert words[:2] == ["manage.py", script], f"an example of `{script} -h` must start with `manage.py {script}`"
    args = [str(tmp_path / w.lstrip("/")) if w.startswith("/") else w for w in words[2:]]
    monkeypatch.chdir(tmp_path)
    if script in PREPARE:
        PREPARE[script](args, tmp_path)
    args = [a for w in args for a in (sorted(glob.glob(w)) if "*" in w else [w])]
    mod = importlib.import_module(f"cli.{SCRIPTS[script]}")
    capsys.readouterr()
    rc = mod.main(args)
    out, err = capsys.readouterr()
    assert rc == 0, f"{example}\n{out}\n{err}"


@pytest.mark.parametrize("script,example", MODULE_EXAMPLES, ids=[e for _, e in MODULE_EXAMPLES])
def test_module_example_runs(script: str, example: str, node1: OrchestratorProc, capsys: pytest.CaptureFixture[str]) -> None:
    words = shlex.split(example)
    assert words[:2] == ["manage.py", script], f"an example of `{script} -h` must start with `manage.py {script}`"
    from cli import apply, deployments, inspect, logs, run, stop

    if script in ("apply", "deployments", "inspect", "logs"):  # what the examples name exists (apply is idempotent)
        assert apply.main(["-c", node1.config, "deploy/example-deployments.yaml", "--wait", "20"]) == 0
    if script == "stop":  # something to stop: two modules of the example's name that wait on stdin
        name = words[words.index("-n") + 1]
        assert run.main(["-c", node1.config, "-r", "node1", "-n", name, "-f", "cat.wasm", "--copy", "2"]) == 0
    capsys.readouterr()
    mod = {"apply": apply, "deployments": deployments, "inspect": inspect, "logs": logs, "run": run, "stop": stop}[script]
    rc = mod.main(["-c", node1.config, *words[2:]])
    out, err = capsys.readouterr()
    assert rc == 0, f"{example}\n{out}\n{err}"
    if script == "run" and "--follow" in words:
        assert "Hello" in out, out
    if script == "stop":
        assert "stopping 2 modules named" in out, out


@pytest.mark.parametrize("script,example", CLUSTER_EXAMPLES, ids=[e for _, e in CLUSTER_EXAMPLES])
def test_cluster_example_runs(script: str, example: str, devices: tuple[Sshd, str], monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sshd, manifest = devices
    words = shlex.split(example)
    assert words[:2] == ["manage.py", script], f"an example of `{script} -h` must start with `manage.py {script}`"
    args = ["-m", manifest, "-F", sshd.client_config, *words[2:]]
    monkeypatch.setenv("SL_SUDO_PASSWORD", "unused")  # sudo as root asks for none; --sudo needs one to be set
    if script == "start":
        from cli import start

        opts = parse(start.__doc__ or "", "start", args)
        ctx = load_context(opts)
        templates = list(opts["<args>"])
        if "-n" not in templates and "--name" not in templates:
            templates = ["-n", "{name}", *templates]
        for d in ctx.devices:
            rendered = [ctx.render(t, d) for t in templates]
            settings = supervisor.cli.build_settings([*rendered, "--no-state"])  # raises on a bad line
            assert settings is not None and settings.name.startswith(d.name), rendered
        return
    mod = importlib.import_module(f"cli.{SCRIPTS[script]}")
    capsys.readouterr()
    rc = mod.main(args)
    out, err = capsys.readouterr()
    assert rc == 0, f"{example}\n{out}\n{err}"
    for d in ctx_devices(example):
        assert f"{d}|" in out, out  # each device answered with output


def ctx_devices(example: str) -> list[str]:
    m = re.search(r"-d (\S+)", example)
    return m.group(1).split(",") if m else list(DEVICES)
