"""Publisher configuration: one small INI file next to the package, overridable by env vars.

INI rather than TOML or YAML because IRIS's embedded Python may be the OS Python 3.9/3.10 (no
`tomllib`) and the publisher must not need extra packages to read its own settings. The documented
template is `mirrorvip_publisher.ini.example` in this package.

Environment variables win over the file, so runbooks and tests can change one setting:

    MIRRORVIP_CONFIG          INI file (default: mirrorvip_publisher.ini beside the package)
    MIRRORVIP_TOPIC           projects/P/topics/T
    MIRRORVIP_BUDGET_SECONDS  time budget of one attempt, 0.5..60 (default 5)
    MIRRORVIP_TOTAL_SECONDS   time for all attempts together, 0.5..600 (default 60)
    MIRRORVIP_IDENTITY_TOKEN  on/off (default on)
    MIRRORVIP_AUDIENCE        identity token audience (default //pubsub.googleapis.com/<topic>)
    MIRRORVIP_PUBSUB_ENDPOINT host:port of a Pub/Sub emulator (default empty: real Pub/Sub)
    GCE_METADATA_HOST         metadata server host[:port] (default 169.254.169.254)
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

SECTION = "mirrorvip"
CONFIG_FILE_NAME = "mirrorvip_publisher.ini"
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / CONFIG_FILE_NAME
DEFAULT_BUDGET_SECONDS = 5.0
MIN_BUDGET_SECONDS = 0.5
MAX_BUDGET_SECONDS = 60.0
# The announcement runs in a background JOB, not in IRIS's callback: it may retry for longer than
# one budget. An identity token or a Pub/Sub that comes back within a minute still moves the VIP.
DEFAULT_TOTAL_SECONDS = 60.0
MAX_TOTAL_SECONDS = 600.0
# The link-local address, not metadata.google.internal: no DNS lookup on the failover path.
DEFAULT_METADATA_HOST = "169.254.169.254"

TOPIC_RE = re.compile(r"^projects/[a-z][-a-z0-9.:]{4,61}[a-z0-9]/topics/[A-Za-z][-\w.~+%]{2,254}$")
HOST_RE = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")
ENDPOINT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):[0-9]{1,5}$")

ENV_VARS = {
    "topic": "MIRRORVIP_TOPIC",
    "budget_seconds": "MIRRORVIP_BUDGET_SECONDS",
    "total_seconds": "MIRRORVIP_TOTAL_SECONDS",
    "identity_token": "MIRRORVIP_IDENTITY_TOKEN",
    "audience": "MIRRORVIP_AUDIENCE",
    "pubsub_endpoint": "MIRRORVIP_PUBSUB_ENDPOINT",
}
TRUE_WORDS = ("1", "on", "true", "yes")
FALSE_WORDS = ("0", "off", "false", "no")


@dataclass(frozen=True)
class PublisherConfig:
    """Validated settings for one announcement.

    `budget_seconds` bounds one attempt (metadata, token, publish); failed attempts are retried
    until `total_seconds` have passed since the announcement started. `pubsub_endpoint` is the
    `host:port` of a Pub/Sub emulator (plain gRPC, no credentials); empty means real Pub/Sub.
    The client library's own switch, `PUBSUB_EMULATOR_HOST`, is ignored: an announcement goes
    where this file says, whatever IRIS's environment holds.
    """

    topic: str
    budget_seconds: float = DEFAULT_BUDGET_SECONDS
    total_seconds: float = DEFAULT_TOTAL_SECONDS
    identity_token: bool = True
    audience: str = ""
    metadata_host: str = DEFAULT_METADATA_HOST
    pubsub_endpoint: str = ""

    def __post_init__(self) -> None:
        _check_topic(self.topic, "topic")
        _check_seconds(self.budget_seconds, "budget_seconds", MAX_BUDGET_SECONDS)
        _check_seconds(self.total_seconds, "total_seconds", MAX_TOTAL_SECONDS)
        if not HOST_RE.match(self.metadata_host):
            raise ConfigError(f"GCE_METADATA_HOST: {self.metadata_host!r} is not host[:port]")
        _check_endpoint(self.pubsub_endpoint, "pubsub_endpoint")
        if not self.audience:
            object.__setattr__(self, "audience", default_audience(self.topic))

    @property
    def project(self) -> str:
        """The project that owns the topic."""
        return self.topic.split("/")[1]


def default_audience(topic: str) -> str:
    """The CloudEvent `source` of the function's trigger: both sides know it without config."""
    return f"//pubsub.googleapis.com/{topic}"


def _check_topic(value: str, where: str) -> None:
    if not value:
        raise ConfigError(f"{where}: required (projects/PROJECT/topics/TOPIC)")
    if not TOPIC_RE.match(value):
        raise ConfigError(f"{where}: {value!r} is not projects/PROJECT/topics/TOPIC")


def _check_endpoint(value: str, where: str) -> None:
    if value and not ENDPOINT_RE.match(value):
        raise ConfigError(f"{where}: {value!r} is not host:port (empty for real Pub/Sub)")


def _check_seconds(value: float, where: str, maximum: float) -> None:
    if not MIN_BUDGET_SECONDS <= value <= maximum:
        raise ConfigError(f"{where}: {value!r} seconds is outside {MIN_BUDGET_SECONDS}..{maximum}")


def _parse_seconds(text: str, where: str, maximum: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a number of seconds") from None
    _check_seconds(value, where, maximum)
    return value


def _parse_switch(text: str, where: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{where}: {text!r} is not on/off")


def read_config_file(path: Path) -> dict[str, str]:
    """The `[mirrorvip]` section of an INI file, refusing unknown keys."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read: {exc.strerror or exc}") from None
    except configparser.Error as exc:
        raise ConfigError(f"config file {path}: not valid INI: {exc.message}") from None
    if not parser.has_section(SECTION):
        raise ConfigError(f"config file {path}: no [{SECTION}] section")
    values = dict(parser.items(SECTION))
    unknown = sorted(set(values) - set(ENV_VARS))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(ENV_VARS))}"
        )
    return values


def load_config(
    environ: Mapping[str, str] | None = None, path: Path | None = None
) -> PublisherConfig:
    """Read the file (if any) and the environment into a validated `PublisherConfig`.

    Args:
        environ: environment to read (default `os.environ`).
        path: config file; default `$MIRRORVIP_CONFIG`, else `mirrorvip_publisher.ini` next to the
            package (optional: the environment alone may configure everything).

    Raises:
        ConfigError: naming the bad field and where it came from.
    """
    env = os.environ if environ is None else environ
    explicit = path or (Path(env["MIRRORVIP_CONFIG"]) if env.get("MIRRORVIP_CONFIG") else None)
    file_path = explicit or DEFAULT_CONFIG_PATH
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    if explicit is not None or file_path.exists():
        values = read_config_file(file_path)
        sources = {key: f"{file_path} [{SECTION}] {key}" for key in values}
    for key, var in ENV_VARS.items():
        if env.get(var, "") != "":
            values[key] = env[var]
            sources[key] = var
    topic = values.get("topic", "").strip()
    _check_topic(topic, sources.get("topic", f"topic (set {ENV_VARS['topic']} or a config file)"))
    budget = DEFAULT_BUDGET_SECONDS
    if "budget_seconds" in values:
        budget = _parse_seconds(
            values["budget_seconds"], sources["budget_seconds"], MAX_BUDGET_SECONDS
        )
    total = DEFAULT_TOTAL_SECONDS
    if "total_seconds" in values:
        total = _parse_seconds(values["total_seconds"], sources["total_seconds"], MAX_TOTAL_SECONDS)
    identity = True
    if "identity_token" in values:
        identity = _parse_switch(values["identity_token"], sources["identity_token"])
    endpoint = values.get("pubsub_endpoint", "").strip()
    _check_endpoint(endpoint, sources.get("pubsub_endpoint", "pubsub_endpoint"))
    return PublisherConfig(
        topic=topic,
        budget_seconds=budget,
        total_seconds=total,
        identity_token=identity,
        audience=values.get("audience", "").strip(),
        metadata_host=env.get("GCE_METADATA_HOST", "") or DEFAULT_METADATA_HOST,
        pubsub_endpoint=endpoint,
    )
