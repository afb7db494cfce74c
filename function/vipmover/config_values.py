"""The value checks every config section shares: each error names the field and what it got.

A config is JSON or YAML written by hand (YAML keys may be None, ints or dates), so every check
says where the value sits and shows it with `repr`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ConfigError


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def no_unknown_keys(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """A misspelt key is an error, not a default silently kept."""
    unknown = sorted(set(obj) - allowed, key=repr)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")


def number(
    value: Any,
    where: str,
    low: float,
    high: float,
    *,
    integer: bool = False,
    what: str = "a number in ",
    why: str = "",
) -> float:
    """`value` as a float when it is a number (an int with `integer`) in `low..high`.

    `True` is refused although Python counts it as 1: `timeout: yes` is a mistake, not one second.
    """
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise ConfigError(f"{where}: expected {what}{low:g}..{high:g}{why}, got {value!r}")
    return float(value)
