"""The gateway's typed JSON checked against Google's discovery document: no invented field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import googleapiclient
import pytest

from vipmover.api_types import SCHEMAS

pytestmark = pytest.mark.unit

DISCOVERY = (
    Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "compute.v1.json"
)


@pytest.mark.parametrize("schema", sorted(SCHEMAS))
def test_every_typed_key_is_a_field_of_its_discovery_schema(schema: str) -> None:
    document: dict[str, Any] = json.loads(DISCOVERY.read_text())

    fields = set(document["schemas"][schema]["properties"])

    assert set(SCHEMAS[schema].__annotations__) - fields == set()
