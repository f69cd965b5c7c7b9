"""Collect profiling data of a realm into files (`python -m collector`, `make profile`).

Usage:
    collector [options]

Options:
    -c FILE --config=FILE    Node configuration (broker, realm, orchestrator) [default: config.json].
    -d DIR --data=DIR        Where results go: the store DIR/results.sqlite, and (files mode) one file per
                             result, DIR/<date>/<runtime>/<module>.<uuid>.<type>.json [default: data].
    --no-files               Only the store (`manage.py export` writes the files from it).
    --mqtt=HOST:PORT         Broker (overrides the config); a comma-separated list: brokers to fail
                             over between, in that order (docs/cluster.md).
    --realm=REALM            Realm (overrides the config).
    --no-rest                Do not ask the orchestrator for names of unknown runtimes/modules.
    --client-id=ID           MQTT client id, i.e. the broker session that queues profiles while the
                             collector is away (default sl-collector-REALM-HOST-HASH, HASH of the data dir).
                             Two collectors with one id take the session from each other: the one
                             that loses it stops (exit 1).
    --session-expiry=SECONDS  How long the broker keeps the session of an absent collector [default: 604800].
    -v LEVEL --verbose=LEVEL  Log level [default: INF].
    -h --help                Show this help.
"""
from __future__ import annotations

import sys

from common.venv import ensure_module

ensure_module("collector")  # a new shell's `python` lacks the packages of .venv: re-exec under it

from docopt import docopt  # noqa: E402

from collector.store import Collector, CollectorBusy, ProfileStore, rest_lookup  # noqa: E402
from common.broker import broker_list  # noqa: E402
from common.config import ConfigError, load_config  # noqa: E402
from common.logs import setup_logging  # noqa: E402
from common.stop_signals import serve_until, stop_event  # noqa: E402


def main(argv: list[str]) -> int:
    args = docopt(__doc__, argv=argv)
    try:
        setup_logging(args["--verbose"])
    except ValueError as e:
        print(f"collector: {e}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args["--config"] if args["--config"] != "config.json" else None)
    except ConfigError as e:
        print(f"collector: {e}", file=sys.stderr)
        return 2
    host, port = cfg.mqtt, cfg.mqtt_port
    if args["--mqtt"]:
        try:  # HOST:PORT, or a list of them to fail over between (common/broker.py)
            brokers = broker_list(args["--mqtt"], 0)
        except ValueError as e:
            brokers = [("", 0)]
            print(f"collector: --mqtt: {e}", file=sys.stderr)
        if any(not p for _, p in brokers):
            print(f"collector: --mqtt must be HOST:PORT[,HOST:PORT...], got {args['--mqtt']!r}", file=sys.stderr)
            return 2
        host, port = args["--mqtt"], brokers[0][1]
    realm = args["--realm"] or cfg.realm
    expiry = args["--session-expiry"]
    if not expiry.isdigit() or int(expiry) > 0xFFFFFFFF:
        print(f"collector: --session-expiry must be whole seconds (0 .. 4294967295), got {expiry!r}", file=sys.stderr)
        return 2
    client_id = args["--client-id"]
    if client_id is not None and not client_id.strip():
        print("collector: --client-id must not be empty", file=sys.stderr)
        return 2
    store = ProfileStore(args["--data"], None if args["--no-rest"] else rest_lookup(cfg.orchestrator_url),
                         files=not args["--no-files"])
    try:
        col = Collector(store, host, port, realm, username=cfg.mqtt_username, password=cfg.password(),
                        client_id=client_id,
                        session_expiry=int(expiry))
    except ConfigError as e:
        print(f"collector: {e}", file=sys.stderr)
        return 2
    if cfg.use_ssl:
        import ssl

        col.client.tls_set(ca_certs=cfg.ssl_ca, certfile=cfg.ssl_cert, keyfile=cfg.ssl_key, cert_reqs=ssl.CERT_REQUIRED)
        col.client.tls_insecure_set(cfg.ssl_insecure)
    done = stop_event()
    col.on_fatal = done.set
    try:
        col.start()
    except CollectorBusy as e:
        print(f"collector: {e}", file=sys.stderr)
        return 2
    except (OSError, TimeoutError) as e:
        print(f"collector: cannot reach the broker at {host}:{port}: {e}", file=sys.stderr)
        return 1
    serve_until(done, col.stop)
    return 1 if col.fatal else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
