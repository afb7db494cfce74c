"""The real function, served by functions-framework's test client, and its outcome log lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import functions_framework
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from local.function_process import FUNCTION_SOURCE, outcome_lines


@dataclass(frozen=True)
class Delivery:
    """What one push delivery produced: the HTTP status Pub/Sub sees, and the log line."""

    status: int
    outcome: dict[str, Any]

    def assert_failed(self, reason: str, *, retry: bool) -> None:
        """A `failed` line with this `error_reason`; a retry answers 500 so Pub/Sub redelivers."""
        assert (self.status, self.outcome["outcome"]) == (500 if retry else 200, "failed")
        assert (self.outcome["retry"], self.outcome["error_reason"]) == (retry, reason)


class FunctionUnderTest:
    """`on_mirror_event` loaded from function/main.py with the current environment."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        app = functions_framework.create_app(  # type: ignore[no-untyped-call]
            target="on_mirror_event", source=str(FUNCTION_SOURCE), signature_type="cloudevent"
        )
        self._client = app.test_client()
        self._capsys = capsys
        self._capsys.readouterr()

    def deliver(self, event: CloudEvent, *, binary: bool = False) -> Delivery:
        """POST one CloudEvent (structured or binary mode) and return its one outcome line."""
        headers, body = (to_binary if binary else to_structured)(event)
        response = self._client.post("/", headers=headers, data=body)
        lines = outcome_lines(self._capsys.readouterr().out)
        assert len(lines) == 1, f"expected one outcome line, got {lines}"
        return Delivery(response.status_code, lines[0])

    def post_json(self, envelope: dict[str, Any], path: str = "/") -> Delivery:
        """POST a raw Pub/Sub push envelope, as a push subscription does."""
        response = self._client.post(path, json=envelope)
        lines = outcome_lines(self._capsys.readouterr().out)
        assert len(lines) == 1, f"expected one outcome line, got {lines}"
        return Delivery(response.status_code, lines[0])
