"""What every subcommand starts from: the function's config, its gateway, the chosen mirrors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..compute import SCOPES, ComputeGateway
from ..config import Config, MirrorConfig, load_config

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

EXIT_OK = 0
EXIT_DEGRADED = 1
"""Degraded, refused, or a problem found."""
EXIT_USAGE = 2
"""Usage or configuration error."""
EXIT_API = 3
"""The Compute API (or Pub/Sub) is unreachable or denies the caller."""
READ_TIMEOUT_S = 30.0


class UsageError(Exception):
    """A bad argument or configuration: exit code 2, the message says which."""


@dataclass(frozen=True)
class Session:
    """The config, the Compute gateway and the mirrors a subcommand works on."""

    config: Config
    gateway: ComputeGateway
    mirrors: tuple[MirrorConfig, ...]


def open_session(
    config_file: str | None,
    mirror_name: str | None,
    impersonate: str | None,
    environ: Mapping[str, str] = os.environ,
) -> Session:
    """Load the config as the function does, and build the gateway with the operator's rights.

    Raises:
        UsageError: no or an invalid config, an unknown mirror, `--as` against an emulator.
        ConfigError: a field of the config is invalid.
    """
    env = dict(environ)
    if config_file:
        env.pop("MIRROR_CONFIG", None)
        env["MIRROR_CONFIG_FILE"] = config_file
    endpoint = env.get("COMPUTE_API_ENDPOINT") or None
    config = load_config(env, default_project=lambda: _own_project(env, endpoint))
    mirrors = tuple(config.mirrors.values())
    if mirror_name is not None:
        chosen = config.mirror(mirror_name)
        if chosen is None:
            raise UsageError(
                f"--mirror {mirror_name}: not in the config (mirrors: {', '.join(config.mirrors)})"
            )
        mirrors = (chosen,)
    credentials: Credentials | None = None
    if impersonate:
        if endpoint:
            raise UsageError("--as needs the real Compute API (COMPUTE_API_ENDPOINT is set)")
        credentials = _impersonated(impersonate)
    return Session(config, ComputeGateway(endpoint, credentials), mirrors)


def _own_project(env: Mapping[str, str], endpoint: str | None) -> str | None:
    """The project for mirrors whose config names none: the environment's, or ADC's."""
    for name in ("GOOGLE_CLOUD_PROJECT", "GCP_PROJECT", "CLOUDSDK_CORE_PROJECT"):
        if env.get(name):
            return env[name]
    if endpoint:
        return None
    import google.auth  # noqa: PLC0415

    _, project = google.auth.default()
    return project


def _impersonated(service_account: str) -> Credentials:
    """The caller's credentials acting as `service_account` (needs Token Creator on it)."""
    import google.auth  # noqa: PLC0415
    from google.auth import impersonated_credentials  # noqa: PLC0415

    source, _ = google.auth.default(scopes=SCOPES)
    return impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
        source_credentials=source, target_principal=service_account, target_scopes=list(SCOPES)
    )
