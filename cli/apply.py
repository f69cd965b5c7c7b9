"""Declare deployments: named sets of modules the orchestrator keeps running (docs/orchestrator.md,
"Deployments"). FILE (YAML or JSON) holds one deployment, a list of them, or `deployments: [...]`;
each names a module file, its args and env, a placement (runtime or node names, or a kind / apis /
platform constraint), a count and a restart policy. Applying a deployment again with another
count scales it; any other change replaces its modules. It waits until the orchestrator took every
deployment (or says why not), then with --wait until each runs its count.

Usage:
    manage.py apply [options] FILE
    manage.py apply [options] --delete NAME...
    manage.py apply -h | --help

Options:
    --delete                Remove the named deployments and stop their modules.
    --wait SEC              Then wait up to SEC seconds until every deployment runs its count [default: 0].
    --timeout SEC           How long to wait for the orchestrator to take the request [default: 10].
    -c, --cfg PATH          Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL               Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL     Log level [default: WRN].

Examples:
    manage.py apply deploy/example-deployments.yaml
    manage.py apply --delete hello
"""
from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import yaml  # type: ignore[import-untyped]

from cli._api import Api, CliError, Session, begin, envelope, guard, number, topics
from common.deployspec import SpecError, documents, redacted

SUMMARY = "Declare deployments the orchestrator keeps running (or --delete them)."


def load(path: str) -> list[dict[str, Any]]:
    """The deployments of FILE, checked (common/deployspec.py); CliError with the place of a mistake."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}") from None
    try:
        doc = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise CliError(f"{path} is not valid {'JSON' if path.endswith('.json') else 'YAML'}: {' '.join(str(e).split())}") from None
    try:
        return documents(doc, path)
    except SpecError as e:
        raise CliError(str(e)) from None


def _get(api: Api, name: str) -> dict[str, Any] | None:
    got = api.get(f"/api/deployments/{urllib.parse.quote(name, safe='')}/", {"events": 0})
    return got if isinstance(got, dict) else None


def send(cfg: Any, api: Api, action: str, data: dict[str, Any], names: list[str], done: Any, timeout: float) -> None:
    """Publish one request; wait until `done(name)` holds for every name, or raise the orchestrator's refusal."""
    with Session(cfg) as sess:
        sess.watch_log()
        sess.publish([(topics(cfg).control(), envelope(action, data))])
        deadline = time.monotonic() + timeout
        while True:
            for err in sess.errors():
                body = err.get("data")
                sent = body.get("data") if isinstance(body, dict) else None
                if sent == data:
                    raise CliError(f"the orchestrator refused it: {err.get('description')}")
            if all(done(n) for n in names):
                return
            if time.monotonic() > deadline:
                raise CliError(f"the orchestrator at {api.url} did not take it within {timeout:g} s "
                               "(is it subscribed to the broker in the config?)")
            time.sleep(0.05)


def converged(s: dict[str, Any]) -> bool:
    """Every slot runs, or is finished by its policy (on-failure after exit 0, never)."""
    return bool(s) and s["running"] + s["done"] == s["desired"]


@guard("apply")
def main(argv: list[str]) -> int:
    opts, cfg, api = begin(__doc__, "apply", argv, multi=("NAME",))
    timeout = number(opts, "--timeout", float, 0.0)
    wait = number(opts, "--wait", float, 0.0)
    if opts["--delete"]:
        names = [n for item in opts["NAME"] for n in item.split(",") if n]
        missing = [n for n in names if _get(api, n) is None]
        if missing:
            raise CliError(f"no deployment named {missing[0]!r} (`manage.py deployments` lists them)")
        for n in names:
            send(cfg, api, "delete_deployment", {"name": n}, [n], lambda n: _get(api, n) is None, timeout)
            print(f"deployment {n}: deleted, its modules are stopping")
        return 0
    specs = load(opts["FILE"])
    api.get("/api/deployments/")  # fail early and clearly if the orchestrator is not there
    want = {s["name"]: redacted(s) for s in specs}

    def taken(n: str) -> bool:
        got = _get(api, n)
        return got is not None and got["spec"] == want[n]

    send(cfg, api, "apply_deployments", {"deployments": specs}, list(want), taken, timeout)
    deadline = time.monotonic() + wait
    while True:
        state = {n: _get(api, n) or {} for n in want}
        if all(converged(s) for s in state.values()) or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    late = []
    for n, s in state.items():
        done = f" ({s['done']} finished by its restart policy)" if s.get("done") else ""
        print(f"deployment {n}: applied; {s.get('running', 0)} of {s.get('desired', 0)} running{done}")
        if not converged(s):
            late.append(n)
    if wait and late:
        raise CliError(f"{', '.join(late)} did not reach its count within {wait:g} s (`manage.py deployments NAME` says why)")
    return 0
