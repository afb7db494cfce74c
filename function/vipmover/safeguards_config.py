"""Per-mirror settings of the takeover safeguards: corroboration and the takeover rate limit.

Parsed from a mirror's `corroborate` and `takeover_limit` keys (see `config.py`, which calls
these): `"corroborate": {"url": "http://{ip}:52773/csp/user/mirror_status.cxw",
"timeout_seconds": 2}` and `"takeover_limit": {"moves": 3, "minutes": 10}`. Kept apart from
`config.py` so that each safeguard's knobs sit beside nothing else.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .config_values import mapping, no_unknown_keys, number
from .errors import ConfigError

URL_PLACEHOLDERS = frozenset({"ip", "instance", "zone"})
DEFAULT_PROBE_TIMEOUT_S = 2.0
MAX_PROBE_TIMEOUT_S = 10.0
DEFAULT_TAKEOVER_MOVES = 3
DEFAULT_TAKEOVER_MINUTES = 10
MAX_TAKEOVER_MOVES = 7
"""The move history is one instance label value (63 characters): 7 times of 8 characters."""
DEPLOYED_CORROBORATE_URL = "http://{ip}:52773/csp/user/mirror_status.cxw"
"""What deploy writes for a mirror without `corroborate`: IRIS's default web port and path."""


@dataclass(frozen=True)
class CorroborateConfig:
    """How to ask each member's IRIS whether it is the primary before taking the VIP from it."""

    url: str
    """A template with `{ip}` (the member's internal IP), `{instance}` and `{zone}`."""
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S

    def url_for(self, ip: str, instance: str, zone: str) -> str:
        return self.url.format(ip=ip, instance=instance, zone=zone)


@dataclass(frozen=True)
class TakeoverLimit:
    """At most `moves` moves of one mirror within `minutes`, unless the holder is not running.

    `moves == 0` switches the limit off (drills, tests that flip quickly).
    """

    moves: int = DEFAULT_TAKEOVER_MOVES
    minutes: float = DEFAULT_TAKEOVER_MINUTES

    @property
    def enabled(self) -> bool:
        return self.moves > 0

    @property
    def window_ms(self) -> int:
        return round(self.minutes * 60_000)


def _check_template(url: str, where: str) -> None:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(url) if name is not None}
    except ValueError as err:
        raise ConfigError(f"{where}: {url!r} is not a URL template ({err})") from None
    unknown = fields - URL_PLACEHOLDERS
    if unknown:
        raise ConfigError(
            f"{where}: unknown placeholder(s) {', '.join(sorted(unknown))} in {url!r}; use "
            f"{{ip}}, {{instance}} or {{zone}}"
        )
    parts = urlsplit(url.format(ip="10.0.0.1", instance="vm", zone="z"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: {url!r} is not an http(s) URL")


def parse_corroborate(value: Any, where: str) -> CorroborateConfig | None:
    """`corroborate` of one mirror; absent or null switches corroboration off."""
    if value is None:
        return None
    value = mapping(value, where)
    no_unknown_keys(value, {"url", "timeout_seconds"}, where)
    url = value.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(
            f"{where}.url: required, a URL template such as {DEPLOYED_CORROBORATE_URL}"
        )
    _check_template(url, f"{where}.url")
    timeout = number(
        value.get("timeout_seconds", DEFAULT_PROBE_TIMEOUT_S),
        f"{where}.timeout_seconds",
        0.1,
        MAX_PROBE_TIMEOUT_S,
    )
    return CorroborateConfig(url, timeout)


def parse_takeover_limit(value: Any, where: str) -> TakeoverLimit:
    """`takeover_limit` of one mirror; absent or null means the defaults (3 in 10 minutes)."""
    if value is None:
        return TakeoverLimit()
    value = mapping(value, where)
    no_unknown_keys(value, {"moves", "minutes"}, where)
    moves = number(
        value.get("moves", DEFAULT_TAKEOVER_MOVES),
        f"{where}.moves",
        0,
        MAX_TAKEOVER_MOVES,
        integer=True,
        what="an integer in ",
        why=" (0 switches the limit off; the history is one label value)",
    )
    minutes = number(value.get("minutes", DEFAULT_TAKEOVER_MINUTES), f"{where}.minutes", 1, 24 * 60)
    return TakeoverLimit(int(moves), minutes)
