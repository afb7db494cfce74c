"""The operator's command against the Compute emulator: a config file, a runner, the state."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emulators.compute import ComputeEmulator
from local.stack import LocalStack
from support import mirrors
from vipmover.cli import main


@dataclass(frozen=True)
class Run:
    """One `mirror-vip` run: its exit code and its stdout (parsed when `--json`)."""

    code: int
    out: str

    @property
    def doc(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.out)
        return document

    @property
    def mirror(self) -> dict[str, Any]:
        first: dict[str, Any] = self.doc["mirrors"][0]
        return first


class Cli:
    """Runs `vipmover.cli.main` in this process with the test's config and emulator."""

    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = config
        self._capsys = capsys

    def __call__(self, *args: str) -> Run:
        self._capsys.readouterr()
        code = main([*args, "--config", str(self.config)])
        return Run(code, self._capsys.readouterr().out)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "mirrors.json"
    path.write_text(json.dumps(mirrors.config()))
    return path


@pytest.fixture
def cli(
    compute: ComputeEmulator,
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    monkeypatch.setenv("COMPUTE_API_ENDPOINT", compute.url)
    monkeypatch.delenv("MIRROR_CONFIG", raising=False)
    monkeypatch.delenv("MIRROR_VIP_TOPIC", raising=False)
    return Cli(config_file, capsys)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """`mirror-vip ARGS --json` with the config the environment names: exit code, document."""
    capsys.readouterr()
    code = main([*args, "--json"])
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return code, document


def drill_args(stack: LocalStack, member: str, timeout: str = "30") -> list[str]:
    """`drill --to member` through the stack's Pub/Sub, metadata server and function log."""
    assert stack.function is not None
    return [
        "drill",
        "--to",
        member,
        "--topic",
        stack.topic,
        "--pubsub-endpoint",
        stack.pubsub.host,
        "--metadata-host",
        stack.metadata.host_for(member),
        "--timeout",
        timeout,
        "--function-log",
        str(stack.function.log_path),
    ]
