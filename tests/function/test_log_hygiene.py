"""Logs that cannot be forged: what a sender writes never becomes a label value or a control
character in the outcome line (issue 14, section 5)."""

from __future__ import annotations

import json

import pytest

from support import mirrors
from support.events import became_primary, cloud_event
from support.function_app import FunctionUnderTest

pytestmark = pytest.mark.integration
FORGED = 'EVIL\u202eRORRIM\n{"severity": "INFO"}\x1b[2J\u200b'


def test_unknown_mirror_is_logged_as_unknown_with_a_cleaned_excerpt(
    function: FunctionUnderTest,
) -> None:
    delivery = function.deliver(cloud_event(became_primary(mirrors.backup(), mirror=FORGED[:64])))

    outcome = delivery.outcome
    assert outcome["error_reason"] == "unknown_mirror"
    assert (outcome["mirror"], outcome["member"]) == ("unknown", "unknown")
    assert outcome["claimed"].startswith("EVILRORRIM{")
    line = json.dumps(outcome, ensure_ascii=False)
    assert not any(c in line for c in "\u202e\n\x1b\u200b")


def test_a_configured_members_event_logs_configured_names_only(
    function: FunctionUnderTest,
) -> None:
    """The IRIS member name is the sender's word; the instance name is the configuration's."""
    event = became_primary(mirrors.backup(), mirror="irismirror") | {"member": FORGED}

    outcome = function.deliver(cloud_event(event)).outcome

    assert outcome["outcome"] == "moved"
    assert (outcome["mirror"], outcome["member"]) == (mirrors.MIRROR, mirrors.backup().name)
    assert "\u202e" not in outcome["claimed"]
    assert "\n" not in outcome["claimed"]
