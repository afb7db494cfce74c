"""The gateway's typed JSON is the real API's: every key exists in Google's discovery document.

The gateway speaks plain REST, so a misspelled field would be silently ignored by the API (or
never be present in its answers). Each TypedDict in `vipmover.api_types` is checked against the
schema it mirrors, nested shapes by the path they sit under.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import googleapiclient
import pytest

from vipmover import api_types

pytestmark = pytest.mark.unit

DISCOVERY = (
    Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "compute.v1.json"
)
NESTED = {
    api_types.OperationErrorJson: ("Operation", "error"),
    api_types.OperationErrorItemJson: ("Operation", "error", "errors"),
}


def schema_at(schemas: dict[str, Any], name: str, *path: str) -> dict[str, Any]:
    """The object schema at `path` below schema `name` (through arrays and $refs)."""
    node: dict[str, Any] = schemas[name]
    for key in path:
        node = node["properties"][key]
        node = node.get("items", node)
        node = schemas[node["$ref"]] if "$ref" in node else node
    return node


@pytest.mark.parametrize(
    ("schema", "typed"),
    [(name, typed) for name, typed in api_types.SCHEMAS.items()]
    + [(" / ".join(path), typed) for typed, path in NESTED.items()],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_every_typed_key_exists_in_the_discovery_schema(schema: str, typed: type) -> None:
    schemas = json.loads(DISCOVERY.read_text())["schemas"]
    name, *path = schema.split(" / ")
    properties = schema_at(schemas, name, *path)["properties"]
    keys = set(typing.get_type_hints(typed))
    assert keys <= set(properties), f"{typed.__name__}: not in {schema}: {keys - set(properties)}"


def test_every_typed_dict_is_checked() -> None:
    typed = {
        value
        for value in vars(api_types).values()
        if isinstance(value, type) and typing.is_typeddict(value)
    }
    assert typed == set(api_types.SCHEMAS.values()) | set(NESTED)
