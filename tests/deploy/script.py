"""Run deploy/gcp/deploy.sh the way a user does, and read what it printed or would run."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy" / "gcp"
DEPLOY_SH = DEPLOY_DIR / "deploy.sh"
PROJECT = "demo-mirror-vip"
IRIS_SA = f"iris-vm@{PROJECT}.iam.gserviceaccount.com"
FUNCTION_SA = f"mirror-vip-function@{PROJECT}.iam.gserviceaccount.com"
TRIGGER_SA = f"mirror-vip-trigger@{PROJECT}.iam.gserviceaccount.com"
BUILD_SA = f"mirror-vip-build@{PROJECT}.iam.gserviceaccount.com"
EGRESS_SUBNET = "mirror-vip-egress"


def write_config(directory: Path, **settings: str) -> Path:
    """A deploy.env with the required settings, plus or minus `settings` (empty value = unset)."""
    values = {
        "PROJECT": PROJECT,
        "REGION": "us-central1",
        "MIRROR_CONFIG_FILE": str(DEPLOY_DIR / "mirrors.example.yaml"),
        "IRIS_VM_SERVICE_ACCOUNT": IRIS_SA,
        "ALERT_EMAIL": "oncall@example.com",
        "EGRESS_SUBNET": EGRESS_SUBNET,
        "BUILD_DIR": str(directory / "build"),
    } | settings
    path = directory / "deploy.env"
    path.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items() if v))
    return path


@dataclass(frozen=True)
class Command:
    """One gcloud command line: its words, and its --flag=value options."""

    argv: tuple[str, ...]

    @property
    def words(self) -> tuple[str, ...]:
        """The positional words (`gcloud pubsub topics create NAME`)."""
        return tuple(word for word in self.argv if not word.startswith("-"))

    def flag(self, name: str) -> str | None:
        """The value of `--name=value`, "" for a bare `--name`, None when absent."""
        for word in self.argv:
            if word == f"--{name}":
                return ""
            if word.startswith(f"--{name}="):
                return word.split("=", 1)[1]
        return None

    def startswith(self, *words: str) -> bool:
        return self.words[: len(words)] == words


def dry_run(directory: Path, *steps: str, **settings: str) -> list[Command]:
    """The commands of a dry run of `steps` with `write_config(directory, **settings)`."""
    result = run_deploy("--dry-run", *steps, config=write_config(directory, **settings))
    assert result.returncode == 0, result.stderr
    return parse_dry_run(result.stdout)


def parse_dry_run(stdout: str) -> list[Command]:
    """A dry run prints one shell-quoted command per line."""
    return [Command(tuple(shlex.split(line))) for line in stdout.splitlines() if line.strip()]


def run_deploy(
    *args: str, config: Path, env: Mapping[str, str] | None = None, timeout: float = 100
) -> subprocess.CompletedProcess[str]:
    """Run deploy.sh from another directory (it must find its own files)."""
    return subprocess.run(
        [str(DEPLOY_SH), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=config.parent,
        env=dict(env if env is not None else os.environ),
    )


def mutations(stderr: str) -> list[str]:
    """The commands deploy.sh ran that change something (it echoes each as `+ gcloud ...`)."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith("+ gcloud") and " describe " not in line
    ]


def gcloud_json(env: Mapping[str, str], *args: str) -> Any:
    """Run gcloud (in `env`, e.g. against an emulator) and decode its JSON output."""
    result = subprocess.run(
        ["gcloud", *args, f"--project={PROJECT}", "--format=json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(env),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def load_deploy_script(name: str) -> ModuleType:
    """`deploy/gcp/<name>.py`: a script deploy.sh runs, not on the import path."""
    spec = importlib.util.spec_from_file_location(name, DEPLOY_DIR / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
