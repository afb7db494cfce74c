"""The mirror configuration: which VIP belongs to which mirror, and who may hold it.

Parsed once at start-up from `MIRROR_CONFIG` (JSON text) or `MIRROR_CONFIG_FILE` (a JSON or YAML
file) into frozen objects. Every error names the offending field, e.g.
`mirrors.IRISMIRROR.members[1].zone: 'us-west1' is not a zone`. Unknown keys are errors too: a
typo such as `privte_vip` must not silently disable a setting.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .config_values import mapping, no_unknown_keys, number
from .errors import ConfigError
from .safeguards_config import (
    CorroborateConfig,
    TakeoverLimit,
    parse_corroborate,
    parse_takeover_limit,
)

ZONE_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
PROJECT_RE = re.compile(r"^[a-z][-a-z0-9.:]{4,61}[a-z0-9]$")
NIC_RE = re.compile(r"^nic[0-9]$")

DEFAULT_OPERATION_TIMEOUT_S = 240.0
FUNCTION_TIMEOUT_LIMIT_S = 540
"""The longest an event-driven Cloud Function may run."""
LOG_MARGIN_S = 60
"""Time kept after the move's deadline to read back and log the outcome before the function
is killed: a move that outlives the function leaves no outcome line at all."""
MAX_OPERATION_TIMEOUT_S = FUNCTION_TIMEOUT_LIMIT_S - LOG_MARGIN_S
MARK_NAME_CHARS = 49
"""Characters of an instance name that the high-water mark label value keeps (63 - 14)."""


@dataclass(frozen=True, order=True)
class InstanceRef:
    """A VM, named the way the Compute API addresses it."""

    project: str
    zone: str
    name: str

    def __str__(self) -> str:
        return f"{self.project}/{self.zone}/{self.name}"

    @property
    def region(self) -> str:
        """`us-west1-a` -> `us-west1`."""
        return self.zone.rsplit("-", 1)[0]


@dataclass(frozen=True)
class PublicIp:
    """A reserved static external address that follows the primary."""

    address_name: str
    region: str
    access_config_name: str
    restore_ephemeral: bool = True
    """Give the member that loses the static IP an ephemeral one back, so it keeps reaching
    Google APIs (and can announce its own next promotion)."""


@dataclass(frozen=True)
class ForwardingRuleIp:
    """A static external IP held by a protocol forwarding rule, retargeted at the primary's
    target instance: a regional operation that never touches the old primary's zone."""

    forwarding_rule: str
    region: str


Mode = Literal["alias", "route"]


@dataclass(frozen=True)
class MirrorConfig:
    """One IRIS mirror: its VIP and its members.

    `mode` `alias` puts the VIP on the primary's NIC as an alias IP range; `route` sends it to
    the primary with a custom static route in `network` (see `route_plan`).
    """

    name: str
    project: str
    network_interface: str
    private_vip: ipaddress.IPv4Network
    subnetwork_range_name: str | None
    public_ip: PublicIp | None
    members: tuple[InstanceRef, ...]
    mode: Mode = "alias"
    network: str | None = None
    """Route mode: the VPC network; None means the network of the primary's NIC."""
    forwarding_rule: ForwardingRuleIp | None = None
    target_instances: tuple[tuple[InstanceRef, str], ...] = ()
    """(member, its target instance's name), for `forwarding_rule`."""

    def target_instance(self, member: InstanceRef) -> str | None:
        """The name of the member's target instance (in its zone), if configured."""
        return next((name for ref, name in self.target_instances if ref == member), None)

    corroborate: CorroborateConfig | None = None
    """Ask the members' IRIS before taking the VIP from a holder; None: do not ask."""
    takeover_limit: TakeoverLimit = field(default_factory=TakeoverLimit)

    @property
    def vip(self) -> str:
        """The alias range as the API writes it, e.g. `10.0.0.250/32`."""
        return str(self.private_vip)

    def member(self, project: str, zone: str, name: str) -> InstanceRef | None:
        """The configured member with exactly this identity, if any."""
        wanted = InstanceRef(project, zone, name)
        return wanted if wanted in self.members else None


GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
MAX_CLOCK_SKEW_S = 300
"""Tolerance on token times; more would let a token outlive its purpose by that much."""
LABEL_PREFIXES = ("mirror-vip-", "mirror-vip-moves-", "mirror-vip-token-")
"""Instance label keys mirror-vip writes per mirror: the high-water mark, the recent moves (the
takeover limit) and the last accepted identity token of each member."""


def label_key(prefix: str, mirror_name: str) -> str:
    """An instance label key for a mirror, e.g. `mirror-vip-irismirror`.

    Label keys allow lowercase letters, digits, `_` and `-`, 63 characters at most; so distinct
    mirror names can share a key (`IRIS.MIRROR`, `IRIS-MIRROR`): `parse_config` refuses that.
    """
    return (prefix + re.sub(r"[^a-z0-9_-]", "-", mirror_name.lower()))[:63]


@dataclass(frozen=True)
class IdentityConfig:
    """How events prove which VM sent them (instance identity tokens).

    With `required` (the default: fail closed), an event without a valid token for its own
    `instance` is rejected, so a VM can only ever claim the VIP for itself. `audience` None means
    the topic the event came through (`//pubsub.googleapis.com/projects/P/topics/T`, the
    CloudEvent source, which a direct invoker controls: deploy writes it explicitly). The token's
    audience is this base plus `#<sha256 of the event>` (`identity.event_digest`).
    """

    required: bool = True
    audience: str | None = None
    certs_url: str = GOOGLE_CERTS_URL
    max_clock_skew_s: float = 300.0


@dataclass(frozen=True)
class Config:
    """Everything the function serves: any number of mirrors."""

    mirrors: Mapping[str, MirrorConfig]
    operation_timeout_s: float = DEFAULT_OPERATION_TIMEOUT_S
    identity: IdentityConfig = IdentityConfig()

    def mirror(self, name: str) -> MirrorConfig | None:
        """The mirror with this name, ignoring case: IRIS upper-cases mirror names."""
        wanted = name.casefold()
        return next((m for key, m in self.mirrors.items() if key.casefold() == wanted), None)


def _require(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj or obj[key] is None:
        raise ConfigError(f"{where}.{key}: required")
    return obj[key]


def _string(value: Any, where: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    if pattern and not pattern.fullmatch(value):
        raise ConfigError(f"{where}: {value!r} is not {what}")
    return value


def _vip(value: Any, where: str) -> ipaddress.IPv4Network:
    text = _string(value, where)
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        raise ConfigError(
            f"{where}: {text!r} is not an IPv4 address or CIDR range ({err})"
        ) from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise ConfigError(f"{where}: {text!r} is not IPv4; alias IP ranges are IPv4")
    if not network.is_private:
        raise ConfigError(f"{where}: {text!r} is not a private address")
    return network


def _public_ip(value: Any, where: str, default_region: str) -> PublicIp:
    obj = mapping(value, where)
    no_unknown_keys(
        obj, {"address_name", "region", "access_config_name", "restore_ephemeral"}, where
    )
    address_name = _string(
        _require(obj, "address_name", where),
        f"{where}.address_name",
        NAME_RE,
        "a valid address name",
    )
    region = obj.get("region") or default_region
    _string(region, f"{where}.region", REGION_RE, "a region such as us-west1")
    access_config_name = obj.get("access_config_name") or address_name
    _string(access_config_name, f"{where}.access_config_name")
    restore = obj.get("restore_ephemeral", True)
    if not isinstance(restore, bool):
        raise ConfigError(f"{where}.restore_ephemeral: expected true or false, got {restore!r}")
    return PublicIp(address_name, region, access_config_name, restore)


def _target_instances(value: Any, where: str, project: str) -> tuple[tuple[InstanceRef, str], ...]:
    """Each member's `target_instance`, where given (checked against the mode elsewhere)."""
    pairs = []
    for index, raw in enumerate(value):
        name = raw.get("target_instance")
        if name is not None:
            here = f"{where}[{index}].target_instance"
            _string(name, here, NAME_RE, "a valid target instance name")
            pairs.append((InstanceRef(project, raw["zone"], raw["instance"]), name))
    return tuple(pairs)


def _members(value: Any, where: str, project: str) -> tuple[InstanceRef, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of members")
    members: list[InstanceRef] = []
    for index, raw in enumerate(value):
        here = f"{where}[{index}]"
        obj = mapping(raw, here)
        no_unknown_keys(obj, {"instance", "zone", "target_instance"}, here)
        name = _string(
            _require(obj, "instance", here), f"{here}.instance", NAME_RE, "a valid instance name"
        )
        zone = _string(_require(obj, "zone", here), f"{here}.zone", ZONE_RE, "a zone")
        member = InstanceRef(project, zone, name)
        if member in members:
            raise ConfigError(f"{here}: {name} in {zone} is listed twice")
        prefix = name[:MARK_NAME_CHARS]
        twin = next((m for m in members if m.name[:MARK_NAME_CHARS] == prefix), None)
        if twin is not None:
            raise ConfigError(
                f"{here}.instance: {name!r} and {twin.name!r} ({twin.zone}) share their first "
                f"{MARK_NAME_CHARS} characters; the high-water mark names members by instance name"
            )
        members.append(member)
    return tuple(members)


MIRROR_KEYS = {
    "project",
    "network_interface",
    "private_vip",
    "subnetwork_range_name",
    "public_ip",
    "members",
    "mode",
    "network",
    "corroborate",
    "takeover_limit",
}


def _mirror(name: str, value: Any, default_project: Callable[[], str | None]) -> MirrorConfig:
    where = f"mirrors.{name}"
    obj = mapping(value, where)
    no_unknown_keys(obj, MIRROR_KEYS, where)
    project = obj.get("project") or default_project()
    if not project:
        raise ConfigError(f"{where}.project: required (the function's own project is unknown)")
    _string(project, f"{where}.project", PROJECT_RE, "a project id")
    nic = obj.get("network_interface") or "nic0"
    _string(nic, f"{where}.network_interface", NIC_RE, "a NIC name such as nic0")
    vip = _vip(_require(obj, "private_vip", where), f"{where}.private_vip")
    range_name = obj.get("subnetwork_range_name")
    if range_name is not None:
        _string(range_name, f"{where}.subnetwork_range_name")
    members = _members(_require(obj, "members", where), f"{where}.members", project)
    targets = _target_instances(obj["members"], f"{where}.members", project)
    public_ip = forwarding_rule = None
    raw_public = obj.get("public_ip")
    if isinstance(raw_public, Mapping) and "forwarding_rule" in raw_public:
        forwarding_rule = _forwarding_rule(raw_public, f"{where}.public_ip", members[0].region)
        _check_target_instances(members, targets, f"{where}.members")
    elif raw_public is not None:
        public_ip = _public_ip(raw_public, f"{where}.public_ip", members[0].region)
    mode = obj.get("mode", "alias")
    if mode not in ("alias", "route"):
        raise ConfigError(f"{where}.mode: expected 'alias' or 'route', got {mode!r}")
    network = obj.get("network")
    if network is not None:
        _string(network, f"{where}.network", NAME_RE, "a network name")
    mirror = MirrorConfig(
        name,
        project,
        nic,
        vip,
        range_name,
        public_ip,
        members,
        mode=mode,
        network=network,
        forwarding_rule=forwarding_rule,
        target_instances=targets,
        corroborate=parse_corroborate(obj.get("corroborate"), f"{where}.corroborate"),
        takeover_limit=parse_takeover_limit(obj.get("takeover_limit"), f"{where}.takeover_limit"),
    )
    _check_mode(mirror, where)
    return mirror


def _forwarding_rule(value: Mapping[str, Any], where: str, default_region: str) -> ForwardingRuleIp:
    no_unknown_keys(value, {"forwarding_rule", "region"}, where)
    name = _string(
        value["forwarding_rule"], f"{where}.forwarding_rule", NAME_RE, "a forwarding rule name"
    )
    region = value.get("region") or default_region
    _string(region, f"{where}.region", REGION_RE, "a region such as us-west1")
    return ForwardingRuleIp(name, region)


def _check_target_instances(
    members: tuple[InstanceRef, ...], targets: tuple[tuple[InstanceRef, str], ...], where: str
) -> None:
    """A forwarding rule can only follow the primary to a member that has a target instance."""
    have = {ref for ref, _ in targets}
    for index, member in enumerate(members):
        if member not in have:
            raise ConfigError(
                f"{where}[{index}].target_instance: required when public_ip is a "
                "forwarding_rule (the rule is retargeted at the new primary's target instance)"
            )


def _check_mode(mirror: MirrorConfig, where: str) -> None:
    """What each mode cannot do, said at start-up rather than at the first failover."""
    if mirror.mode == "alias":
        if mirror.network is not None:
            raise ConfigError(f"{where}.network: only used in route mode")
        return
    if mirror.private_vip.prefixlen != 32:
        raise ConfigError(
            f"{where}.private_vip: route mode routes one address; expected a /32, got {mirror.vip}"
        )
    if mirror.subnetwork_range_name is not None:
        raise ConfigError(
            f"{where}.subnetwork_range_name: alias mode only; in route mode the VIP lies "
            "outside every subnet range"
        )
    if mirror.public_ip is not None:
        raise ConfigError(
            f"{where}.public_ip.address_name: route mode moves the public IP with a "
            "forwarding_rule (an access config is bound to the old primary's zone)"
        )


def parse_config(raw: Any, default_project: Callable[[], str | None] = lambda: None) -> Config:
    """Validate a decoded configuration document.

    Args:
        raw: The decoded JSON/YAML document.
        default_project: Called only when a mirror omits `project`; returns the function's own
            project, or None when it cannot be found.

    Raises:
        ConfigError: naming the first invalid field.
    """
    root = mapping(raw, "config")
    no_unknown_keys(root, {"mirrors", "operation_timeout_seconds", "identity"}, "config")
    mirrors_raw = mapping(_require(root, "mirrors", "config"), "mirrors")
    if not mirrors_raw:
        raise ConfigError("mirrors: at least one mirror is required")
    mirrors: dict[str, MirrorConfig] = {}
    for name, value in mirrors_raw.items():
        _string(name, "mirrors (key)")
        same = next((other for other in mirrors if other.casefold() == name.casefold()), None)
        if same is not None:
            raise ConfigError(
                f"mirrors.{name}: differs from mirror {same!r} only in case; IRIS mirror names "
                "are case-insensitive"
            )
        mirrors[name] = _mirror(name, value, default_project)
    _check_vips_disjoint(mirrors)
    _check_label_keys_distinct(mirrors)
    timeout = root.get("operation_timeout_seconds", DEFAULT_OPERATION_TIMEOUT_S)
    timeout = number(
        timeout,
        "operation_timeout_seconds",
        1,
        MAX_OPERATION_TIMEOUT_S,
        what="",
        why=f" (the function's {FUNCTION_TIMEOUT_LIMIT_S} s limit less {LOG_MARGIN_S} s to log)",
    )
    identity = _identity(root.get("identity") or {}, "identity")  # null keeps the defaults
    return Config(mirrors=mirrors, operation_timeout_s=timeout, identity=identity)


def _identity(value: Any, where: str) -> IdentityConfig:
    obj = mapping(value, where)
    no_unknown_keys(obj, {"required", "audience", "certs_url", "max_clock_skew_seconds"}, where)
    required = obj.get("required", True)
    if not isinstance(required, bool):
        raise ConfigError(f"{where}.required: expected true or false, got {required!r}")
    audience = obj.get("audience")
    if audience is not None:
        _string(audience, f"{where}.audience")
    certs_url = obj.get("certs_url") or GOOGLE_CERTS_URL
    _certs_url(certs_url, f"{where}.certs_url")
    skew = obj.get("max_clock_skew_seconds", MAX_CLOCK_SKEW_S)
    skew = number(skew, f"{where}.max_clock_skew_seconds", 0, MAX_CLOCK_SKEW_S, what="")
    return IdentityConfig(required, audience, certs_url, skew)


def _certs_url(value: Any, where: str) -> None:
    """https, or plain http to a loopback address only (the local stack's metadata emulator):
    whoever can answer for the certs URL can sign tokens that the function accepts."""
    text = _string(value, where, re.compile(r"https?://\S+"), "an http(s) URL")
    parts = urlsplit(text)
    if parts.scheme == "https" and parts.hostname:
        return
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback:
        raise ConfigError(
            f"{where}: {text!r} must be https (plain http only to a loopback address)"
        )


def _check_label_keys_distinct(mirrors: Mapping[str, MirrorConfig]) -> None:
    """Two mirrors writing one label key would read each other's marks as their own."""
    owners: dict[str, str] = {}
    for mirror in mirrors.values():
        for prefix in LABEL_PREFIXES:
            key = label_key(prefix, mirror.name)
            other = owners.setdefault(key, mirror.name)
            if other != mirror.name:
                raise ConfigError(
                    f"mirrors.{mirror.name}: its instance label {key!r} is also mirror "
                    f"{other!r}'s; rename one (labels keep only a-z, 0-9, _ and -)"
                )


def _check_vips_disjoint(mirrors: Mapping[str, MirrorConfig]) -> None:
    """Two mirrors sharing a VIP would take it from each other at every failover."""
    seen: dict[str, str] = {}
    for mirror in mirrors.values():
        for other_vip, other_name in seen.items():
            if mirror.private_vip.overlaps(ipaddress.ip_network(other_vip)):
                raise ConfigError(
                    f"mirrors.{mirror.name}.private_vip: overlaps the VIP of mirror {other_name}"
                )
        seen[mirror.vip] = mirror.name


def decode_document(text: str, source: str) -> Any:
    """JSON, or YAML when the text is not JSON (YAML is imported only then)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as json_err:
        if source.endswith(".json"):
            raise ConfigError(f"{source}: not valid JSON ({json_err})") from None
    import yaml  # noqa: PLC0415 - only YAML files pay for the import

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as yaml_err:
        raise ConfigError(f"{source}: neither valid JSON nor YAML ({yaml_err})") from None


def load_config(
    environ: Mapping[str, str] = os.environ,
    default_project: Callable[[], str | None] = lambda: None,
) -> Config:
    """Read the configuration named by the environment.

    Raises:
        ConfigError: when neither variable is set, the file cannot be read, or a field is invalid.
    """
    text = environ.get("MIRROR_CONFIG")
    source = "MIRROR_CONFIG"
    if not text:
        path = environ.get("MIRROR_CONFIG_FILE")
        if not path:
            raise ConfigError("MIRROR_CONFIG or MIRROR_CONFIG_FILE must be set")
        source = path
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"MIRROR_CONFIG_FILE: cannot read {path}: {err}") from None
    return parse_config(decode_document(text, source), default_project)
