"""Pure pieces of the Compute emulator's model: fingerprints and list filters."""

from __future__ import annotations

import base64

import pytest

from emulators.compute.errors import ApiError
from emulators.compute.filters import parse_filter
from emulators.compute.resources import decode_fingerprint, fingerprints_equal

pytestmark = pytest.mark.unit

RAW = bytes([0xFB, 0xFF, 0xBF, 0xFE, 0xFB, 0xEF, 0xFF, 0xFE])
STANDARD = base64.b64encode(RAW).decode()


@pytest.mark.parametrize(
    "sent",
    [
        STANDARD,
        base64.urlsafe_b64encode(RAW).decode(),
        base64.urlsafe_b64encode(RAW).decode().rstrip("="),
        STANDARD.rstrip("="),
    ],
)
def test_fingerprints_compare_as_bytes_in_any_base64_dialect(sent: str) -> None:
    assert fingerprints_equal(sent, STANDARD)


@pytest.mark.parametrize("sent", ["", "not base64!", base64.b64encode(b"other").decode()])
def test_other_or_malformed_fingerprints_do_not_match(sent: str) -> None:
    assert not fingerprints_equal(sent, STANDARD)


def test_decode_rejects_garbage() -> None:
    assert decode_fingerprint("%%%") is None


RESOURCE = {
    "name": "iris-a",
    "status": "RUNNING",
    "labels": {"mirror": "m1"},
    "networkInterfaces": [{"networkIP": "10.0.0.10"}],
    "canIpForward": False,
}


@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        ("", True),
        ('name = "iris-a"', True),
        ("name = iris-b", False),
        ("name != iris-b", True),
        ("name eq iris-.*", True),
        ("name eq iris", False),
        ("name ne iris-b", True),
        ("labels.mirror = m1", True),
        ('networkInterfaces.networkIP = "10.0.0.10"', True),
        ("canIpForward = false", True),
        ("name:iris", True),
        ("(name = iris-a) (status = RUNNING)", True),
        ("name = iris-a AND status = TERMINATED", False),
        ("name = iris-b OR status = RUNNING", True),
        ("NOT name = iris-b", True),
    ],
)
def test_filter_expressions(expression: str, matches: bool) -> None:
    assert parse_filter(expression)(RESOURCE) is matches


@pytest.mark.parametrize("expression", ["name =", "(name = a", "name eq (", "= a"])
def test_bad_filters_are_400_invalid(expression: str) -> None:
    with pytest.raises(ApiError) as raised:
        parse_filter(expression)

    assert raised.value.code == 400
    assert raised.value.reason == "invalid"
