"""Fixtures shared by every tier: emulators on free ports, and the function wired to them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emulators.compute.server import ComputeEmulator
from support import mirrors
from support.function_app import FunctionUnderTest


@pytest.fixture
def compute() -> Iterator[ComputeEmulator]:
    """A Compute Engine emulator holding the default two-member mirror."""
    with ComputeEmulator(mirrors.state()) as emulator:
        yield emulator


FunctionFactory = Callable[..., FunctionUnderTest]


@pytest.fixture
def start_function(
    compute: ComputeEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> FunctionFactory:
    """Load the function against the emulator with a given MIRROR_CONFIG (default: one mirror)."""

    def start(config: dict[str, Any] | None = None, **env: str) -> FunctionUnderTest:
        monkeypatch.setenv("MIRROR_CONFIG", json.dumps(config or mirrors.config()))
        monkeypatch.setenv("COMPUTE_API_ENDPOINT", compute.url)
        monkeypatch.delenv("MIRROR_CONFIG_FILE", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return FunctionUnderTest(capsys)

    return start


@pytest.fixture
def function(start_function: FunctionFactory) -> FunctionUnderTest:
    """The function serving the default mirror."""
    return start_function()
