"""The canonical form of an event, which its identity token is bound to (the function's side).

The publisher asks the metadata server for a token whose audience is
`<base audience>#<event_digest(event)>`, computed on the event before the token is added; the
function recomputes the digest from the event it received, so a token proves this one event and
cannot be moved onto another. Its twin is `mirrorvip_publisher.event.event_digest`; a contract
test (tests/publisher/test_contract.py) proves that both give the same digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

TOKEN_FIELD = "identity_token"  # noqa: S105 - a field name, not a secret


def canonical_event(doc: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, ASCII escapes, without the token: stable across JSON libraries."""
    unsigned = {key: value for key, value in doc.items() if key != TOKEN_FIELD}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def event_digest(doc: Mapping[str, Any]) -> str:
    """sha256 of the canonical event, in hex (64 characters)."""
    return hashlib.sha256(canonical_event(doc)).hexdigest()
