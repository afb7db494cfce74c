"""Validate the user's mirror config and write the function's `--env-vars-file`.

deploy.sh calls this before `gcloud functions deploy`, so a typo in the mirror config fails the
deployment here, with the field it names (the function's own parser, `vipmover.config`), instead of
crash-looping the deployed function. The env file carries the config as JSON text in
`MIRROR_CONFIG`, because the deployed function reads environment variables, not the user's file.
Verified identity (`identity.required`) is switched on unless the config sets it (an empty
`identity:` key, which YAML reads as null, counts as not set), and its `audience` is written
explicitly (the topic's, `--topic`), never left to the CloudEvent's source, which a direct
invoker controls. Every mirror without a `corroborate` key gets IRIS's default health endpoint
(`corroborate: null` switches corroboration off for that mirror).

Prints one line for deploy.sh, `TIMEOUT_S MIRRORS`:

- the function timeout: the function's own operation deadline (`operation_timeout_seconds`) plus a
  margin for the reads before and after and the outcome line. An event-driven function may run
  540 s at most, so an operation deadline over 480 s is refused (by the function's own parser)
  rather than capped: a capped timeout would kill the function before it reaches its own deadline
  and logs why.
- the number of mirrors, from which deploy.sh sizes `--max-instances` (in a zone outage every
  mirror may fail over at once).

Usage::

    python deploy/gcp/render_function_env.py --mirror-config mirrors.yaml --project P --out env.yaml
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "function"))

from vipmover.config import LOG_MARGIN_S, decode_document, parse_config  # noqa: E402
from vipmover.errors import ConfigError  # noqa: E402
from vipmover.safeguards_config import DEPLOYED_CORROBORATE_URL  # noqa: E402


@dataclass(frozen=True)
class Rendered:
    """What deploy.sh needs from the mirror config."""

    env_text: str
    timeout_s: int
    mirrors: int


def function_timeout_s(operation_timeout_s: float) -> int:
    """The `--timeout` that lets the function reach its own deadline and still log the outcome.

    Never above the 540 s limit: the function's parser refuses an operation deadline over
    `vipmover.config.MAX_OPERATION_TIMEOUT_S` (480 s) rather than letting it be capped.
    """
    return math.ceil(operation_timeout_s) + LOG_MARGIN_S


def with_identity_required(raw: Any, topic: str | None = None) -> Any:
    """On GCP, events must prove which VM sent them unless the config says otherwise; the
    audience is the topic's, written here rather than taken from the CloudEvent."""
    if isinstance(raw, dict):
        if raw.get("identity") is None:  # absent, or an empty `identity:` key
            raw["identity"] = {}
        if isinstance(raw["identity"], dict):
            raw["identity"].setdefault("required", True)
            if topic:
                raw["identity"].setdefault("audience", f"//pubsub.googleapis.com/{topic}")
    return raw


def with_corroboration(raw: Any) -> Any:
    """On GCP, every mirror asks its members' IRIS before a takeover unless it says otherwise."""
    mirrors = raw.get("mirrors") if isinstance(raw, dict) else None
    for entry in mirrors.values() if isinstance(mirrors, dict) else ():
        if isinstance(entry, dict) and "corroborate" not in entry:
            entry["corroborate"] = {"url": DEPLOYED_CORROBORATE_URL}
    return raw


def render(mirror_config: Path, project: str, topic: str | None = None) -> Rendered:
    """Read and validate the mirror config file: see `render_document`.

    Raises:
        ConfigError: naming the first invalid field.
        OSError: the file cannot be read.
    """
    raw = decode_document(mirror_config.read_text(encoding="utf-8"), str(mirror_config))
    return render_document(raw, project, topic)


def render_document(raw: Any, project: str, topic: str | None = None) -> Rendered:
    """Validate a decoded config; return the env file's text, the function timeout, mirror count.

    Raises:
        ConfigError: naming the first invalid field.
    """
    raw = with_corroboration(with_identity_required(raw, topic))
    config = parse_config(raw, default_project=lambda: project)
    env = {
        "MIRROR_CONFIG": json.dumps(raw, separators=(",", ":"), sort_keys=True),
        "GOOGLE_CLOUD_PROJECT": project,
    }
    # Every JSON string is a valid YAML scalar: no YAML library needed to write the file.
    text = "".join(f"{key}: {json.dumps(value)}\n" for key, value in env.items())
    return Rendered(text, function_timeout_s(config.operation_timeout_s), len(config.mirrors))


def member_lines(raw: Any, project: str) -> list[str]:
    """`MODE ZONE INSTANCE TARGET_INSTANCE` for every member (TARGET_INSTANCE `-` when none):
    deploy.sh creates the target instances a forwarding rule points at, and checks route mode's
    `canIpForward`.

    Raises:
        ConfigError: naming the first invalid field.
    """
    config = parse_config(raw, default_project=lambda: project)
    return [
        f"{mirror.mode} {member.zone} {member.name} {mirror.target_instance(member) or '-'}"
        for mirror in config.mirrors.values()
        for member in mirror.members
    ]


def health_ports(raw: Any, project: str) -> list[int]:
    """The TCP ports of the members' health endpoints that the function probes (corroboration,
    with deploy's default for a mirror that does not say), for deploy.sh's firewall rule; empty
    when every mirror switches corroboration off.

    Raises:
        ConfigError: naming the first invalid field.
    """
    config = parse_config(with_corroboration(raw), default_project=lambda: project)
    ports = set()
    for mirror in config.mirrors.values():
        if mirror.corroborate is not None:
            parts = urlsplit(mirror.corroborate.url.format(ip="10.0.0.1", instance="vm", zone="z"))
            ports.add(parts.port or (443 if parts.scheme == "https" else 80))
    return sorted(ports)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mirror-config", type=Path, required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--out", type=Path, help="the env file to write")
    parser.add_argument(
        "--members", action="store_true", help="print one line per member instead (member_lines)"
    )
    parser.add_argument(
        "--health-ports", action="store_true", help="print the health ports instead (health_ports)"
    )
    parser.add_argument("--topic", help="projects/P/topics/T: the identity tokens' audience")
    args = parser.parse_args(argv)
    if not (args.members or args.health_ports) and args.out is None:
        parser.error("--out is required unless --members or --health-ports")
    try:
        if args.health_ports:
            text = args.mirror_config.read_text(encoding="utf-8")
            raw = decode_document(text, str(args.mirror_config))
            print(" ".join(map(str, health_ports(raw, args.project))))
            return 0
        if args.members:
            text = args.mirror_config.read_text(encoding="utf-8")
            raw = decode_document(text, str(args.mirror_config))
            print("\n".join(member_lines(raw, args.project)))
            return 0
        rendered = render(args.mirror_config, args.project, args.topic)
    except (ConfigError, OSError) as err:
        print(f"mirror config {args.mirror_config}: {err}", file=sys.stderr)
        return 2
    args.out.write_text(rendered.env_text, encoding="utf-8")
    print(rendered.timeout_s, rendered.mirrors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
