"""SilverLine orchestrator (run it as `python -m orchestrator` or `make orchestrator`).

Usage:
    orchestrator [options]
    orchestrator -h | --help

Options:
    -c, --config PATH     Node/cluster config file [default: config.json]; a missing default file means
                          embedded defaults (broker localhost:1883, realm `realm`, REST port 8000).
    --db PATH             SQLite store (WAL); a restart reloads it [default: orchestrator.db].
    --http-port PORT      REST API port (default: config `http_port`).
    --bind ADDR           Address the REST API listens on (default: 127.0.0.1 when config `http` is
                          localhost, else 0.0.0.0). Beyond loopback it needs --token-file.
    --token-file FILE     The REST API's token (first line, 16 characters or more): every request must
                          send `Authorization: Bearer TOKEN` (docs/orchestrator.md, "REST").
    --identities FILE     The realm's identities.json (written by `manage.py acl -o DIR`): registrations
                          of other uuids, or under other names, are refused (docs/security.md).
    --mqtt HOST           Broker host (default: config `mqtt`), or a list HOST:PORT,HOST:PORT,... to fail
                          over between, in that order (docs/cluster.md).
    --mqtt-port PORT      Broker port (default: config `mqtt_port`).
    --realm REALM         Topic realm (default: config `realm`).
    --ka-interval SEC     Keepalive interval told to runtimes; dead after 3 missed (only runtimes that
                          send keepalives: the original's never do) [default: 5].
    --delete-timeout SEC  A deleted module whose runtime sends no `exited` within SEC is marked dead
                          (the original's minimal runtime ignores deletes) [default: 30].
    --keep-ended N        Ended modules kept (with their exit and state history), newest first [default: 10000].
    --keep-ended-for SEC  And for how long at most [default: 604800].
    --log-lines N         Lines of output kept per module (also after it ended; 0: none) [default: 200].
    -v, --verbose LEVEL   Log level (number or CRI/ERR/WRN/INF/DBG/TRA) [default: INF].
    --logdir DIR          Also log to DIR/orchestrator.log.
"""
from __future__ import annotations

import sys

from common.venv import ensure_module

ensure_module("orchestrator")  # a new shell's `python` lacks the packages of .venv: re-exec under it

from docopt import DocoptExit, docopt  # noqa: E402

from common.config import ConfigError, load_config  # noqa: E402
from common.logs import parse_level, setup_logging  # noqa: E402
from common.stop_signals import serve_until, stop_event  # noqa: E402


class UsageError(ValueError):
    """A command-line value that is wrong; the text says which."""


def _number(opts: dict[str, object], key: str, kind: type) -> object:
    raw = opts[key]
    if raw is None:
        return None
    try:
        v = kind(raw)
    except ValueError:
        raise UsageError(f"{key} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
    if v < 0:
        raise UsageError(f"{key} must not be negative, got {raw!r}")
    return v


def main(argv: list[str]) -> int:
    try:
        opts = docopt(__doc__, argv=argv)
    except DocoptExit as e:
        print(e, file=sys.stderr)
        return 2
    try:
        level = parse_level(str(opts["--verbose"]))
    except ValueError as e:
        print(f"orchestrator: {e}", file=sys.stderr)
        return 2
    setup_logging(level, opts["--logdir"], logfile_name="orchestrator.log")
    explicit = any(a in ("-c", "--config") or a.startswith(("--config=", "-c")) and a != "-c" for a in argv)
    try:
        cfg = load_config(str(opts["--config"]) if explicit else None)
        cfg.password()  # a bad `pwd` file is a config error now, not a reconnect loop later
    except ConfigError as e:
        print(f"orchestrator: {e}", file=sys.stderr)
        return 2
    if opts["--mqtt"]:
        cfg.mqtt = str(opts["--mqtt"])
    if opts["--realm"]:
        cfg.realm = str(opts["--realm"])
    try:
        port = _number(opts, "--mqtt-port", int)
        http_port = _number(opts, "--http-port", int)
        ka = float(_number(opts, "--ka-interval", float))  # type: ignore[arg-type]
        delete_timeout = float(_number(opts, "--delete-timeout", float))  # type: ignore[arg-type]
        keep = int(_number(opts, "--keep-ended", int))  # type: ignore[call-overload]
        keep_for = float(_number(opts, "--keep-ended-for", float))  # type: ignore[arg-type]
        log_lines = int(_number(opts, "--log-lines", int))  # type: ignore[call-overload]
    except UsageError as e:
        print(f"orchestrator: {e}", file=sys.stderr)
        return 2
    if port is not None:
        cfg.mqtt_port = int(port)  # type: ignore[call-overload]
    bind = opts["--bind"] or ("127.0.0.1" if cfg.http in ("localhost", "127.0.0.1", "::1") else "0.0.0.0")

    from orchestrator.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread (orchestrator/memory.py)
    # the REST threads get the GIL back within 1 ms (default 5 ms) of the decision thread's turn: at 10,000
    # runtimes a page's p99 was 51 / 60 ms against 66 / 136 ms (bench/fleet.py, 2 interleaved pairs, issue #26)
    sys.setswitchinterval(0.001)
    from orchestrator.guard import IdentityError, load_identities
    from orchestrator.rest import read_token
    from orchestrator.service import Service
    from common.exposure import warn_unauthenticated

    warn_unauthenticated(cfg, "orchestrator")
    try:
        token = read_token(str(opts["--token-file"])) if opts["--token-file"] else None
        ids = load_identities(str(opts["--identities"])) if opts["--identities"] else None
        svc = Service(cfg, db_path=str(opts["--db"]), bind=str(bind),
                      http_port=int(http_port) if http_port is not None else cfg.http_port,  # type: ignore[call-overload]
                      ka_interval=ka, delete_timeout=delete_timeout, token=token, identities=ids)
    except (ValueError, IdentityError) as e:
        print(f"orchestrator: {e}", file=sys.stderr)
        return 2
    from orchestrator.history import LOGS

    LOGS.lines = log_lines
    done = stop_event()
    try:
        svc.start()
        assert svc.orch is not None and svc.client is not None
        svc.orch.history.keep, svc.orch.history.keep_for = keep, keep_for  # (the first prune is a minute away)
        for t in ("stdio/+", "stdio/+/+"):  # output tails (history.py), per-node stdio too (docs/protocol.md "Stdio")
            svc.client.message_callback_add(f"{cfg.realm}/proc/{t}", LOGS.on_message)
    except OSError as e:
        print(f"orchestrator: cannot listen on {bind}:{svc.http_port} for the REST API: {e.strerror}", file=sys.stderr)
        svc.stop()
        return 1
    return serve_until(done, svc.stop)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
