"""Node / cluster configuration (`config.json`, docs/protocol.md, "Configuration file").

A missing file means embedded defaults (localhost broker, realm `realm`); a file that
exists but is wrong raises `ConfigError` naming the file and the key. Keys of the original
SilverLine tools that this project does not use (`file_store`, `file_store_port`) are
accepted with a note; any other unknown key is a warning naming the closest known key
(`mqtt_prot`: did you mean 'mqtt_port'?); a password file (`pwd`) that does not exist is a warning and the
connection goes on without a password, as the original's does (docs/compatibility.md).

The types of the keys, each runtime's section of `runtimes` included, are the schema's
(`common.schema.ConfigFile`, `RuntimeSettings`): a wrong one is a ConfigError naming the key path,
e.g. `config.json: key 'runtimes.linux.memory_limit' must be int, got str '1G'`.
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import msgspec

from common import schema
from common.jsonfile import JsonFileError, read_object

DEFAULT_PATH = "config.json"

log = logging.getLogger("cfg")

# keys the original's `manage.py configure` writes that nothing here reads: key -> (types, what it was)
ORIGINAL_ONLY_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "file_store": ((str,), "the original's file store host (its `--file_store`)"),
    "file_store_port": ((int,), "the original's file store port"),
}
_warned_pwd: set[str] = set()


class ConfigError(Exception):
    """The configuration file is unreadable or has a key of the wrong type."""


@dataclass
class Config:
    mqtt: str = "localhost"
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    pwd: str | None = None  # path of a file holding the MQTT password
    use_ssl: bool = False
    ssl_ca: str | None = None  # ours: CA bundle for use_ssl (default: system store)
    ssl_cert: str | None = None  # ours: client certificate
    ssl_key: str | None = None
    ssl_insecure: bool = False  # ours: skip hostname check (self-signed test brokers)
    realm: str = "realm"
    http: str = "localhost"
    http_port: int = 8000
    manifest: str | None = None
    domain: str = ""
    username: str = ""
    platform: dict[str, Any] = field(default_factory=dict)
    runtimes: dict[str, Any] = field(default_factory=dict)  # per-runtime settings (start.py), checked by the schema
    path: str | None = None  # where it was loaded from (None: defaults)

    def password(self) -> str | None:
        """Read the MQTT password from the `pwd` file, if one is configured."""
        if not self.pwd:
            return None
        path = os.path.expanduser(self.pwd)
        if not os.path.exists(path):
            # the original connects without a password then; so do we, saying so once
            if path not in _warned_pwd:
                _warned_pwd.add(path)
                log.warning("%s: key 'pwd': password file %r does not exist; connecting without a password",
                            self.path or "config", self.pwd)
            return None
        try:
            with open(os.path.expanduser(self.pwd), encoding="utf-8") as f:
                return f.read().strip()
        except OSError as e:
            raise ConfigError(f"{self.path or 'config'}: key 'pwd': cannot read password file {self.pwd!r}: {e.strerror}") from e

    @property
    def orchestrator_url(self) -> str:
        return f"http://{self.http}:{self.http_port}"

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("path")
        if not d["runtimes"]:
            d.pop("runtimes")
        return d


KNOWN_KEYS = frozenset(f.encode_name for f in msgspec.structs.fields(schema.ConfigFile))


def load_config(path: str | None = None, *, required: bool = False) -> Config:
    """Load `path` (default `config.json` if present) over the embedded defaults."""
    explicit = path is not None
    path = path or DEFAULT_PATH
    if not os.path.exists(path):
        if explicit and required:
            raise ConfigError(f"config file {path!r} does not exist (run `python manage.py configure` to write one)")
        if explicit:
            raise ConfigError(f"config file {path!r} does not exist")
        return Config()
    try:
        raw = read_object(path, "a JSON object at top level")
    except JsonFileError as e:
        raise ConfigError(str(e)) from None
    known: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ORIGINAL_ONLY_KEYS:
            types, what = ORIGINAL_ONLY_KEYS[key]
            if not isinstance(value, types) or isinstance(value, bool):
                raise ConfigError(f"{path}: key {key!r} ({what}) must be {' or '.join(t.__name__ for t in types)}, got {value!r}")
            log.info("%s: key %r is %s; this project does not use it", path, key, what)
        elif key in KNOWN_KEYS:
            known[key] = value
        else:
            # tolerated (configs are shared with other tools), but a typo must not go unnoticed
            names = sorted((*KNOWN_KEYS, *ORIGINAL_ONLY_KEYS))
            close = difflib.get_close_matches(key, names, 1, 0.6)
            log.warning("%s: unknown key %r ignored%s", path, key, f"; did you mean {close[0]!r}?" if close else
                        f" (known keys: {', '.join(names)})")
    try:
        typed = schema.check_config(known)
    except schema.ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return Config(path=path, **{k: getattr(typed, k) for k in known})
