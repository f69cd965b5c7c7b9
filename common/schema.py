"""Typed definitions of every JSON message of the protocol (docs/protocol.md), decoded and checked in one pass.

Each process decodes a message once, at its edge, with the decoder of the topic it came from
(`decode_reg`, `decode_keepalive`, `decode_control`, `decode_runtime_control`, `decode_ipc_create`)
and gets typed objects back, or a `ProtocolError` whose one line names the key that is wrong
("message on realm/proc/control: key 'data.args.env[0]' must be str, got int"). A module create is
checked here and nowhere else: `ModuleCreate` (its keys) and `ModuleArgs` (the `args` keys every
runtime reads). Runtime-specific `args` keys (a test runtime's `role`, a benchmark's `max_seed`)
stay in the open `args` object and are the runtime's business.

Unknown keys are ignored, as the original tools send some we do not read (`index`, `status`), and
replies (`type: "resp"`) on a request topic are recognised and returned as `Reply`.

Standard library + msgspec only: the client side (silverline/, cli/) imports it too. Speed against
orjson plus hand checks: docs/performance.md, "Message schema".
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union, cast

import msgspec
from msgspec import Meta, Struct, field

from common.wire import ProtocolError

NonNegInt = Annotated[int, Meta(ge=0)]
PosInt = Annotated[int, Meta(gt=0)]
EnvItem = Annotated[str, Meta(pattern=r"^[^=]+=")]  # "NAME=VALUE"


class Grant(Struct, frozen=True):
    """One `channels` entry of a create: topics starting with `path` are rewritten to start with `topic`."""
    path: str
    mode: Literal["r", "w", "rw"]
    topic: str


class Resources(Struct):
    """`args.resources`: a CPU budget of `runtime` ns every `period` ns (linux runtime)."""
    period: PosInt
    runtime: PosInt


class ModuleArgs(Struct):
    """The `args` keys of a create that the runtimes read (docs/protocol.md, "Creating modules",
    docs/benchmarking.md); every other key is left to its runtime."""
    argv: Union[list[Union[str, list[str]]], None] = None  # benchmarking: also a list of argv lists (one run each)
    env: Union[list[EnvItem], None] = None
    dirs: Union[list[str], None] = None
    resources: Union[Resources, None] = None
    fault_crash: Literal["ignore", "restart"] = "ignore"
    # benchmarking runtimes
    engine: Union[str, list[str], None] = None
    stdout: Union[str, None] = None
    profile: Union[str, None] = None
    repeat: Union[PosInt, None] = None
    warmup: Union[NonNegInt, None] = None
    limit: Union[Annotated[float, Meta(gt=0)], None] = None
    ilimit: Union[Annotated[float, Meta(gt=0)], None] = None

    def argv_list(self) -> list[str]:
        """`argv` as one list of strings; a benchmark's list of lists is an error here."""
        if self.argv is None:
            return []
        out = [a for a in self.argv if isinstance(a, str)]
        if len(out) != len(self.argv):
            raise ValueError("args.argv must be a list of strings")
        return out

    def argv_lists(self) -> tuple[list[list[str]], bool]:
        """Benchmarks: (the argv lists, whether `argv` was a list of lists, i.e. one run per argv)."""
        if self.argv and all(isinstance(a, list) for a in self.argv):
            return [list(a) for a in self.argv if isinstance(a, list)], True
        return [self.argv_list()], False

    def dir_list(self) -> list[str]:
        return self.dirs or []

    def env_dict(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.env or ())


class ModuleCreate(Struct, dict=True, omit_defaults=True):
    """The `data` of a module `create` (docs/protocol.md, "Creating modules"). `args` stays an open
    object (it is forwarded as sent); its common keys are checked into `margs`."""
    type: Literal["module"] = "module"
    uuid: Union[str, None] = None
    name: Union[str, None] = None
    file: Union[str, None] = None
    filename: Union[str, None] = None  # the original CLI's spelling of `file`
    parent: Union[str, None] = None
    apis: Union[list[str], None] = None
    args: Union[dict[str, Any], None] = None
    channels: Union[list[Grant], None] = None
    index: Union[int, None] = None  # ours: the node's slot (supervisor -> worker); any sent by a tool is dropped

    def __post_init__(self) -> None:
        if self.file is None and self.filename is not None:
            self.file, self.filename = self.filename, None
        if self.file is not None and not self.file:
            raise ValueError("@file@must not be empty (it names the module's program)")
        try:
            self.__dict__["margs"] = msgspec.convert(self.args or {}, ModuleArgs)
        except msgspec.ValidationError as e:
            raise ValueError(_nested(str(e), "args")) from None

    @property
    def margs(self) -> ModuleArgs:
        """The checked common keys of `args`."""
        return cast(ModuleArgs, self.__dict__["margs"])

    @property
    def grants(self) -> list[Grant]:
        return self.channels or []


class ModuleRef(Struct):
    """The `data` of a module `delete`: a uuid (the orchestrator also takes a name or uuid suffix)."""
    uuid: str
    type: Literal["module"] = "module"


class Exited(Struct):
    """The `data` of `exited` (node -> orchestrator); `status` is ours `{reason, code, error}` or the
    original's string "exited" (common/exit_status.py reads both)."""
    uuid: str
    type: Literal["module"] = "module"
    status: Any = None


class Registration(Struct):
    """The `data` of a registration `create` on `reg/UUID` (manager or runtime)."""
    type: Literal["manager", "runtime"]
    name: str
    uuid: Union[str, None] = None
    parent: Union[str, None] = None
    runtime_type: Union[str, None] = None
    max_nmodules: NonNegInt = 0
    apis: Union[list[str], None] = None
    platform: Union[dict[str, Any], None] = None
    metadata: Union[dict[str, Any], None] = None


class Unregistration(Struct):
    """The `data` of a registration `delete` (a clean stop, or the manager's last will)."""
    type: Literal["manager", "runtime"]
    uuid: Union[str, None] = None
    name: Union[str, None] = None
    metadata: Union[dict[str, Any], None] = None
    last_will: bool = False


class Keepalive(Struct):
    """The `data` of a keepalive `update`: `children` are the running modules' stats, as the worker sends them."""
    type: str = "runtime"
    uuid: Union[str, None] = None
    name: Union[str, None] = None
    apis: Union[list[str], None] = None
    children: Union[list[dict[str, Any]], None] = None


ArgList = list[str]


class CampaignPlan(Struct):
    """A compact benchmark plan (docs/protocol.md, "Campaign messages"), expanded by the orchestrator."""
    runtimes: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1)]
    files: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1)]
    engines: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1)]
    argsets: Annotated[list[ArgList], Meta(min_length=1)] = field(default_factory=lambda: [[]])
    argsets_by_file: Union[dict[str, Annotated[list[ArgList], Meta(min_length=1)]], None] = None
    seed: int = 0
    order: Literal["shuffle", "plan"] = "shuffle"
    window: Union[PosInt, None] = None
    args: dict[str, Any] = field(default_factory=dict)


class CampaignCreate(Struct, dict=True):
    campaign: str
    plan: dict[str, Any]  # stored as sent; checked into `checked`

    def __post_init__(self) -> None:
        try:
            self.__dict__["checked"] = msgspec.convert(self.plan, CampaignPlan)
        except msgspec.ValidationError as e:
            raise ValueError(_nested(str(e), "plan")) from None

    @property
    def checked(self) -> CampaignPlan:
        return cast(CampaignPlan, self.__dict__["checked"])


class CampaignRef(Struct):
    campaign: str


class Batch(Struct):
    modules: list[ModuleCreate]
    parent: Union[str, None] = None


# -- profiles: what the orchestrator reads of a campaign cell's (benchmarking/layouts.py has the layouts) -----
class _Outcomes(Struct):
    outcome: list[str] = field(default_factory=list)


class _Loop(Struct):
    runs: _Outcomes = field(default_factory=_Outcomes)


class CampaignProfile(Struct):
    """`benchmarking-v3` (`runs`) or `interference-v2` (`loops[].runs`): the part it is of its module's
    profile and its runs' outcomes; every other key (the samples) is skipped, not decoded."""
    part: tuple[NonNegInt, PosInt] = (0, 1)
    id: Union[str, None] = None  # the result id (common/results.py: the spool's and the collector's key)
    runs: _Outcomes = field(default_factory=_Outcomes)
    loops: list[_Loop] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.part[0] >= self.part[1]:
            raise ValueError("@part@must be [i, n] with i < n")

    def outcomes(self) -> list[str]:
        return self.runs.outcome + [o for lp in self.loops for o in lp.runs.outcome]


_dec_profile = msgspec.json.Decoder(CampaignProfile)


def decode_campaign_profile(payload: bytes) -> CampaignProfile | None:
    """A campaign cell's JSON profile, or None when it is not one (the collector keeps such a message
    raw; it proves nothing about the cell)."""
    try:
        return _dec_profile.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None


# -- the configuration file (config.json, common/config.py) --------------------------------------------
class ConfigFile(Struct, kw_only=True):
    """The keys of config.json this project reads, typed (docs/supervisor.md, docs/orchestrator.md)."""
    mqtt: str = "localhost"
    mqtt_port: Annotated[int, Meta(ge=1, le=65535)] = 1883
    mqtt_username: Union[str, None] = None
    pwd: Union[str, None] = None
    use_ssl: bool = False
    ssl_ca: Union[str, None] = None
    ssl_cert: Union[str, None] = None
    ssl_key: Union[str, None] = None
    ssl_insecure: bool = False
    realm: Annotated[str, Meta(min_length=1)] = "realm"
    http: str = "localhost"
    http_port: Annotated[int, Meta(ge=0, le=65535)] = 8000
    manifest: Union[str, None] = None
    domain: str = ""
    username: str = ""
    platform: dict[str, Any] = field(default_factory=dict)
    runtimes: dict[str, Any] = field(default_factory=dict)  # runtime name -> RuntimeSettings


class ChildLimits(Struct, forbid_unknown_fields=True):
    """`child_limits` of a benchmarking runtime (benchmarking/limits.py): null keeps the default."""
    memory_bytes: Union[PosInt, None] = None
    file_bytes: Union[PosInt, None] = None
    processes: Union[PosInt, None] = None
    cpu_seconds: Union[Annotated[float, Meta(gt=0)], None] = None


class RuntimeSettings(Struct, kw_only=True):
    """One runtime's section of config.json `runtimes` (docs/runtimes.md, docs/benchmarking.md). Keys
    not listed here are the runtime's own and are handed over unchecked."""
    module_root: Union[str, list[str], None] = None
    memory_limit: Union[PosInt, None] = None  # bytes of linear memory per module (linux runtimes)
    cache_dir: Union[str, None] = None
    max_restarts: Union[NonNegInt, None] = None
    restart_backoff: Union[Annotated[float, Meta(ge=0)], None] = None
    wasmer_python: Union[str, None] = None
    python: Union[str, None] = None
    profile: Union[Literal["both", "seed", "ours"], None] = None
    warmup: Union[NonNegInt, None] = None
    child_limits: Union[ChildLimits, None] = None
    enable_engines: Union[bool, str, list[str], None] = None
    default_limit: Union[Annotated[float, Meta(gt=0)], None] = None  # benchmarking: a module's `limit` when it gives none


class ConfigError(ValueError):
    """A configuration value of the wrong type; the text names the key."""


def _config_error(e: msgspec.ValidationError, raw: Any, prefix: str = "") -> ConfigError:
    text = _explain(str(e))
    m = re.match(r"^key '([^']*)': Object contains unknown field `(.+)`$", text)
    if m:
        text = f"key '{m.group(1)}': unknown key {m.group(2)!r}"
    got = _value_at(raw, text)
    if got is not None and "invalid" not in text and "unknown" not in text:
        text = f"{text} {got}" if ", got " in text else f"{text}, got {got}"
    if prefix:
        text = re.sub(r"^(missing )?key '", lambda mm: f"{mm.group(1) or ''}key '{prefix}.", text, count=1)
    return ConfigError(text)


def check_config(raw: dict[str, Any]) -> ConfigFile:
    """config.json's object, typed, each runtime's section too (`runtimes` stays plain: a runtime's own
    keys pass unchecked); ConfigError "key 'runtimes.linux.memory_limit' must be int, got str '1G'"."""
    try:
        cfg = msgspec.convert(raw, ConfigFile)
    except msgspec.ValidationError as e:
        err = _config_error(e, raw)
        if str(err).startswith("key 'runtimes' must be object"):
            err = ConfigError(f"{err} (an object: runtime name -> its settings)")
        raise err from None
    for name, section in cfg.runtimes.items():
        if not isinstance(section, dict):
            raise ConfigError(f"key 'runtimes.{name}' must be object (the runtime's settings), got {type(section).__name__}")
        try:
            msgspec.convert(section, RuntimeSettings)
        except msgspec.ValidationError as e:
            raise _config_error(e, section, f"runtimes.{name}") from None
    return cfg


# -- envelopes: one class per (action, data type); `action` tells them apart ---------------------------
class _Msg(Struct, tag_field="action", kw_only=True):
    object_id: Union[str, None] = None
    type: Literal["req"] = "req"


class CreateMsg(_Msg, tag="create"):
    data: ModuleCreate


class CreateBatchMsg(_Msg, tag="create_batch"):
    data: Batch


class DeleteMsg(_Msg, tag="delete"):
    data: ModuleRef


class ExitedMsg(_Msg, tag="exited"):
    data: Exited


class BatchOpen(Struct):
    """A `create_batch` one of whose modules the schema refuses: each module is checked by itself
    (`check_create`), so the good ones still go in and each bad one is reported."""
    modules: list[Any]
    parent: Union[str, None] = None


class CreateBatchOpenMsg(_Msg, tag="create_batch"):
    data: BatchOpen


class ExitedOpenMsg(_Msg, tag="exited"):
    """`exited` as the orchestrator reads it: `data` stays an open object (a worker merges its own fields,
    e.g. a benchmark's `samples` and `failure`, which a campaign keeps as the cell's record)."""
    data: dict[str, Any]


class CampaignMsg(_Msg, tag="create_campaign"):
    data: CampaignCreate


class ResumeMsg(_Msg, tag="resume_campaign"):
    data: CampaignRef


class RegisterMsg(_Msg, tag="create"):
    data: Registration


class UnregisterMsg(_Msg, tag="delete"):
    data: Unregistration


class KeepaliveMsg(_Msg, tag="update"):
    data: Keepalive


class Reply(Struct):
    """Any `type: "resp"` message (a reply, an error report): requests' topics ignore them."""
    action: str
    type: Literal["resp"]
    object_id: Union[str, None] = None
    data: Any = None


class Head(Struct):
    """Just enough of an envelope to tell a reply, or an action a topic does not take."""
    action: str
    type: str = "req"


ControlRequest = Union[CreateMsg, CreateBatchMsg, DeleteMsg, CampaignMsg, ResumeMsg]
ControlRequestOpen = Union[ControlRequest, "CreateBatchOpenMsg"]
RuntimeControl = Union[CreateMsg, DeleteMsg, ExitedMsg]
RegMessage = Union[RegisterMsg, UnregisterMsg]

_dec_control = msgspec.json.Decoder(ControlRequest)
_dec_runtime_control = msgspec.json.Decoder(RuntimeControl)
_dec_reg = msgspec.json.Decoder(RegMessage)
_dec_keepalive = msgspec.json.Decoder(KeepaliveMsg)
_dec_exited_open = msgspec.json.Decoder(ExitedOpenMsg)
_dec_batch_open = msgspec.json.Decoder(CreateBatchOpenMsg)
_dec_create = msgspec.json.Decoder(ModuleCreate)
_dec_head = msgspec.json.Decoder(Head)
_dec_reply = msgspec.json.Decoder(Reply)
_enc = msgspec.json.Encoder()

_AT = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.S)
_EXPECTED = re.compile(r"^Expected `(.+?)`(?:, got `(.+?)`)?(.*)$")
_MISSING = re.compile(r"^Object missing required field `(.+)`$")


def _nested(text: str, prefix: str) -> str:
    """An error inside a nested check (`args`, `plan`), carried up to the outer decoder as "@PATH@TEXT"."""
    m = _AT.match(text)
    msg, path = (m.group(1), m.group(2) or "") if m else (text, "")
    return f"@{prefix}{path}@{msg}"


def _explain(text: str) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.data.max_nmodules`" as "key 'data.max_nmodules' must
    be int, got str" (the form every error of ours takes)."""
    m = _AT.match(text)
    msg, path = (m.group(1), m.group(2) or "") if m else (text, "")
    path = path.lstrip(".")
    if msg.startswith("@"):
        sub, msg = msg[1:].split("@", 1)
        path = f"{path}.{sub}" if path else sub
    msg = msg.replace("Expected `str` matching regex '^[^=]+='", "Expected `a 'NAME=VALUE' string`")
    msg = msg.replace(" | null`", "`")  # optional keys: null means absent, not worth saying
    e = _EXPECTED.match(msg)
    if e:
        if not path:
            return f"expected a JSON {e.group(1)}{', got ' + e.group(2) if e.group(2) else ''}"
        return f"key {path!r} must be {e.group(1)}{e.group(3)}{', got ' + e.group(2) if e.group(2) else ''}"
    mm = _MISSING.match(msg)
    if mm:
        return f"missing key {(path + '.' if path else '') + mm.group(1)!r}"
    if msg.startswith("Invalid"):
        msg = msg[0].lower() + msg[1:]
    return f"key {path!r}: {msg}" if path else msg


def _decode(dec: "msgspec.json.Decoder[Any]", payload: bytes | str, where: str, accepts: str = "",
            ignore: tuple[str, ...] = ()) -> Any:
    try:
        return dec.decode(payload)
    except msgspec.ValidationError as e:
        err = e
    except msgspec.DecodeError as e:
        raise ProtocolError(f"{where}: malformed JSON: {e}") from None
    except RecursionError:  # JSON nested thousands deep (chaos fuzz): refused like any malformed message
        raise ProtocolError(f"{where}: JSON nested too deep ({len(payload)} bytes)") from None
    try:
        head = _dec_head.decode(payload)
    except (msgspec.ValidationError, RecursionError):
        head = None
    except msgspec.DecodeError:
        raise ProtocolError(f"{where}: malformed JSON") from None
    if head is not None and head.type == "resp":
        try:
            return _dec_reply.decode(payload)
        except (msgspec.ValidationError, RecursionError):
            pass
    if head is not None and head.action in ignore:
        return head
    text = _explain(str(err))
    if accepts and text.startswith("key 'action'"):
        text += f" ({where.split(' on ')[-1]} takes {accepts})"
    try:
        raw = msgspec.json.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        raw = None
    data = raw.get("data") if isinstance(raw, dict) else None
    raise SchemaError(f"{where}: {text}", raw, data, head.action if head is not None else None, text) from None


class SchemaError(ProtocolError):
    """A message the schema refuses. `action` and `uuid` (the `data.uuid` it carries, if a string) let
    a node answer a create it cannot take with an `exited` error, so the orchestrator's record ends."""

    def __init__(self, text: str, raw: Any, data: Any, action: str | None, detail: str) -> None:
        self.action, self.uuid, self.object_id = action, None, None
        if isinstance(data, dict) and isinstance(data.get("uuid"), str):
            self.uuid = data["uuid"]
        if isinstance(raw, dict) and isinstance(raw.get("object_id"), str):
            self.object_id = raw["object_id"]
        got = _value_at(raw, detail)
        if got is None or "invalid" in detail:
            self.detail = detail
        elif ", got " in detail:
            self.detail = f"{detail} {got}"  # "got str 'many'"
        else:
            self.detail = f"{detail}, got {got}"
        super().__init__(text + (self.detail[len(detail):]))


_PATH = re.compile(r"^(?:missing )?key '([^']+)'")
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _value_at(raw: Any, detail: str) -> str | None:
    """The offending value a message's error names, quoted short (at most 60 characters)."""
    m = _PATH.match(detail)
    if m is None or detail.startswith("missing"):
        return None
    v = raw
    for name, idx in _STEP.findall(m.group(1)):
        if name and isinstance(v, dict) and name in v:
            v = v[name]
        elif idx and isinstance(v, list) and int(idx) < len(v):
            v = v[int(idx)]
        else:
            return None
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def decode_control(payload: bytes | str, where: str, ignore: tuple[str, ...] = ()) -> ControlRequestOpen | Reply | Head:
    """A request on `REALM/proc/control` (to the orchestrator); an action in `ignore` (typed elsewhere) is a `Head`."""
    accepts = ", ".join(("create, create_batch, delete, create_campaign, resume_campaign", *ignore))
    try:
        return _decode(_dec_control, payload, where, accepts, ignore)  # type: ignore[no-any-return]
    except SchemaError as e:
        if e.action != "create_batch" or not e.detail.startswith(("key 'data.modules[", "missing key 'data.modules[")):
            raise
        try:
            return _dec_batch_open.decode(payload)  # a bad module in a batch: the others still count
        except (msgspec.ValidationError, RecursionError):
            raise e from None


def decode_runtime_control(payload: bytes | str, where: str, ignore: tuple[str, ...] = ()) -> RuntimeControl | Reply | Head:
    """A message on `REALM/proc/control/RUNTIME`: create and delete for the node, exited for the
    orchestrator. A malformed message whose action is in `ignore` (another party's business) is a `Head`."""
    return _decode(_dec_runtime_control, payload, where, "create, delete, exited", ignore)  # type: ignore[no-any-return]


def decode_exited(payload: bytes | str, where: str) -> ExitedOpenMsg | Reply | Head:
    """An `exited` on `REALM/proc/control/RUNTIME` for the orchestrator (a create or delete there is a `Head`)."""
    msg = _decode(_dec_exited_open, payload, where, "exited", ("create", "delete"))
    if isinstance(msg, ExitedOpenMsg):
        uuid = msg.data.get("uuid", _MISSING_KEY)
        if not isinstance(uuid, str):
            text = ("missing key 'data.uuid'" if uuid is _MISSING_KEY
                    else f"key 'data.uuid' must be str, got {type(uuid).__name__}")
            raise SchemaError(f"{where}: {text}", None, msg.data, "exited", text)
    return msg  # type: ignore[no-any-return]


_MISSING_KEY = object()


def decode_reg(payload: bytes | str, where: str) -> RegMessage | Reply:
    return _decode(_dec_reg, payload, where, "create, delete")  # type: ignore[no-any-return]


def decode_keepalive(payload: bytes | str, where: str) -> KeepaliveMsg | Reply:
    return _decode(_dec_keepalive, payload, where, "update")  # type: ignore[no-any-return]


def decode_ipc_create(payload: bytes, where: str = "create") -> ModuleCreate:
    """The create `data` the supervisor hands a worker (checked by the supervisor already; typed here)."""
    return _decode(_dec_create, payload, where)  # type: ignore[no-any-return]


def check_create(data: Any, where: str) -> ModuleCreate:
    """A module create already decoded as a plain object (a batch member, a stored body)."""
    try:
        return msgspec.convert(data, ModuleCreate)
    except msgspec.ValidationError as e:
        text = _explain(str(e))
        raise SchemaError(f"{where}: {text}", data, data, "create", text) from None


_GrantList = Union[list[Grant], None]


def check_grants(channels: Any) -> list[Grant]:
    """A `channels` list by itself; ValueError "[1]: missing key 'topic'" naming the entry."""
    try:
        return msgspec.convert(channels, _GrantList) or []
    except msgspec.ValidationError as e:
        text = _explain(str(e))
        m = re.match(r"^(missing )?key '(\[\d+\])\.?([^']*)'(.*)$", text)
        if m is None:
            raise ValueError(f": {text}") from None
        raise ValueError(f"{m.group(2)}: key {m.group(3)!r}{' is missing' if m.group(1) else m.group(4)}") from None


def encode(msg: Any) -> bytes:
    """Structs and plain objects as JSON."""
    return _enc.encode(msg)


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)
