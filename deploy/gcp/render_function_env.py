"""Validate the user's mirror config and write the function's `--env-vars-file`.

deploy.sh calls this before `gcloud functions deploy`, so a typo in the mirror config fails the
deployment here, with the field it names (the function's own parser, `vipmover.config`), instead of
crash-looping the deployed function. The env file carries the config as JSON text in
`MIRROR_CONFIG`, because the deployed function reads environment variables, not the user's file.
Verified identity (`identity.required`) is switched on unless the config sets it (an empty
`identity:` key, which YAML reads as null, counts as not set).

Prints the function timeout to use: the function's own operation deadline
(`operation_timeout_seconds`) plus a margin for the reads before and after, capped at 540 s, the
longest an event-driven function may run.

Usage::

    python deploy/gcp/render_function_env.py --mirror-config mirrors.yaml --project P --out env.yaml
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "function"))

from vipmover.config import decode_document, parse_config  # noqa: E402
from vipmover.errors import ConfigError  # noqa: E402

TIMEOUT_MARGIN_S = 60
MAX_EVENT_FUNCTION_TIMEOUT_S = 540


def function_timeout_s(operation_timeout_s: float) -> int:
    """The `--timeout` that lets the function reach its own deadline and still log the outcome."""
    return min(MAX_EVENT_FUNCTION_TIMEOUT_S, math.ceil(operation_timeout_s) + TIMEOUT_MARGIN_S)


def with_identity_required(raw: Any) -> Any:
    """On GCP, events must prove which VM sent them unless the config says otherwise."""
    if isinstance(raw, dict):
        if raw.get("identity") is None:  # absent, or an empty `identity:` key
            raw["identity"] = {}
        if isinstance(raw["identity"], dict):
            raw["identity"].setdefault("required", True)
    return raw


def render(mirror_config: Path, project: str) -> tuple[str, int]:
    """Validate the config and return the env file's text and the function timeout.

    Raises:
        ConfigError: naming the first invalid field.
    """
    raw = decode_document(mirror_config.read_text(encoding="utf-8"), str(mirror_config))
    raw = with_identity_required(raw)
    config = parse_config(raw, default_project=lambda: project)
    env = {
        "MIRROR_CONFIG": json.dumps(raw, separators=(",", ":"), sort_keys=True),
        "GOOGLE_CLOUD_PROJECT": project,
    }
    # Every JSON string is a valid YAML scalar: no YAML library needed to write the file.
    text = "".join(f"{key}: {json.dumps(value)}\n" for key, value in env.items())
    return text, function_timeout_s(config.operation_timeout_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mirror-config", type=Path, required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        text, timeout = render(args.mirror_config, args.project)
    except (ConfigError, OSError) as err:
        print(f"mirror config {args.mirror_config}: {err}", file=sys.stderr)
        return 2
    args.out.write_text(text, encoding="utf-8")
    print(timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
