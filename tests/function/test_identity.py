"""Verified identity: only a token Google signed for the event's own VM, valid when Pub/Sub took
the message, lets an event move the VIP.

Integration tests go through the real function (functions-framework test client, Compute
emulator) with tokens minted by the metadata emulator and checked against its certs endpoint;
unit tests cover the pure decision (`judge_claims`) and the certs cache.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import FunctionFactory
from emulators.compute.server import ComputeEmulator
from emulators.compute.state import stable_id
from emulators.metadata import VM, MetadataEmulator, SigningKey
from local.mirrors import Member
from mirrorvip_publisher.event import bound_audience
from support import mirrors
from support.events import TOPIC, became_primary, cloud_event
from support.function_app import FunctionUnderTest
from vipmover.config import IdentityConfig, InstanceRef
from vipmover.errors import EventRejected, IdentityUnavailable
from vipmover.event import MirrorEvent, format_rfc3339
from vipmover.identity import CertsCache, judge_claims, verify_identity

AUDIENCE = f"//pubsub.googleapis.com/{TOPIC}"
# The live VMs' ids, as the Compute emulator gives them: a verified event's id must match.
PRIMARY_ID = stable_id(mirrors.PROJECT, mirrors.PRIMARY_ZONE, mirrors.primary().name)
BACKUP_ID = stable_id(mirrors.PROJECT, mirrors.BACKUP_ZONE, mirrors.backup().name)
OCCURRED_AT = "2026-11-25T12:00:00.000Z"
IDS = {mirrors.primary().name: PRIMARY_ID, mirrors.backup().name: BACKUP_ID}


def rfc3339(seconds_from_now: float) -> str:
    return format_rfc3339(datetime.now(UTC) + timedelta(seconds=seconds_from_now))


def unsigned_event(member: Member) -> dict[str, Any]:
    """The member's v1 event with its real instance id, without a token; the same every time,
    so that a token bound to it (`bound`) fits the event sent."""
    event = became_primary(member, occurred_at=OCCURRED_AT)
    event["instance"]["id"] = IDS[member.name]
    return event


def signed_event(member: Member, token: str | None) -> dict[str, Any]:
    """The member's v1 event carrying token (None: no token)."""
    event = unsigned_event(member)
    if token is not None:
        event["identity_token"] = token
    return event


def bound(member: Member, audience: str = AUDIENCE) -> str:
    """The audience the publisher asks for: the topic bound to the member's event."""
    return bound_audience(audience, unsigned_event(member))


@pytest.fixture
def metadata() -> Iterator[MetadataEmulator]:
    """Metadata servers of both members; their tokens and the certs that verify them."""
    vms = [
        VM(mirrors.PROJECT, m.zone, m.name, IDS[m.name])
        for m in (mirrors.backup(), mirrors.primary())
    ]
    with MetadataEmulator(vms) as emulator:
        yield emulator


@pytest.fixture
def verifying_function(
    start_function: FunctionFactory, metadata: MetadataEmulator
) -> FunctionUnderTest:
    """The function serving the default mirror with identity required."""
    config = mirrors.config() | {"identity": {"required": True, "certs_url": metadata.certs_url}}
    return start_function(config)


# --------------------------------------------------------------------------------------------------
# Integration: through the real function


@pytest.mark.integration
def test_valid_token_moves_the_vip_and_says_verified(
    compute: ComputeEmulator, metadata: MetadataEmulator, verifying_function: FunctionUnderTest
) -> None:
    backup = mirrors.backup()
    token = metadata.mint_token(bound(backup), backup.name)

    delivery = verifying_function.deliver(cloud_event(signed_event(backup, token)))

    assert delivery.status == 200
    assert delivery.outcome["outcome"] == "moved"
    assert delivery.outcome["identity"] == "verified"
    instance = compute.instance(mirrors.PROJECT, backup.zone, backup.name)
    assert mirrors.VIP in [
        a["ipCidrRange"] for a in instance["networkInterfaces"][0]["aliasIpRanges"]
    ]


@pytest.mark.integration
def test_token_expired_now_but_valid_at_publish_time_is_accepted(
    compute: ComputeEmulator, metadata: MetadataEmulator, verifying_function: FunctionUnderTest
) -> None:
    """A redelivery 70 min after publishing: the token expired since, but not before Pub/Sub
    accepted the message, which is when the VM proved who it was."""
    backup = mirrors.backup()
    token = metadata.mint_token(bound(backup), backup.name, now=time.time() - 4230)

    event = cloud_event(signed_event(backup, token), publish_time=rfc3339(-4200))
    delivery = verifying_function.deliver(event)

    assert delivery.outcome["outcome"] == "moved"
    assert delivery.outcome["identity"] == "verified"
    assert compute.mutations()


@pytest.mark.integration
def test_identity_not_required_is_logged_as_such(function: FunctionUnderTest) -> None:
    """Without `identity.required`, the token is not looked at, not even a malformed one."""
    event = signed_event(mirrors.backup(), "not-a-jwt")

    delivery = function.deliver(cloud_event(event))

    assert delivery.outcome["outcome"] == "moved"
    assert delivery.outcome["identity"] == "not_required"


def _tamper(token: str, **claims: Any) -> str:
    """Change payload claims and keep the original signature."""
    head, payload, signature = token.split(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    encoded = base64.urlsafe_b64encode(json.dumps(doc | claims).encode()).rstrip(b"=").decode()
    return f"{head}.{encoded}.{signature}"


def _forge_with_same_kid(metadata: MetadataEmulator, audience: str, vm: str) -> str:
    """Signed by another key that claims the emulator's kid: the signature cannot verify."""
    impostor = SigningKey.generate(kid=metadata.signing_key.kid)
    return metadata.mint_token(audience, vm, key=impostor)


BACKUP, PRIMARY = mirrors.backup().name, mirrors.primary().name
TokenFactory = Callable[[MetadataEmulator, str], str | None]
"""Makes a token from the metadata emulator and the audience bound to the backup's event."""
# (test id, token for the BACKUP's event, publish time offset in s, expected reason)
BAD_TOKENS: list[tuple[str, TokenFactory, float, str]] = [
    ("no token", lambda _m, _a: None, 0, "missing_token"),
    ("not a jwt", lambda _m, _a: "not-a-jwt", 0, "bad_token"),
    ("three garbage segments", lambda _m, _a: "a.b.c", 0, "bad_token"),
    (
        "alg none",
        lambda _m, _a: (
            ".".join(
                base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
                for part in ({"alg": "none", "typ": "JWT"}, {"iat": 1, "exp": 2})
            )
            + "."
        ),
        0,
        "bad_token",
    ),
    (
        "forged: unknown key",
        lambda m, a: m.mint_token(a, BACKUP, key=SigningKey.generate()),
        0,
        "bad_token",
    ),
    (
        "forged: impostor with the real kid",
        lambda m, a: _forge_with_same_kid(m, a, BACKUP),
        0,
        "bad_token",
    ),
    (
        "tampered payload: primary's token made to name the backup",
        lambda m, a: _tamper(
            m.mint_token(a, PRIMARY),
            google={
                "compute_engine": {
                    "project_id": mirrors.PROJECT,
                    "zone": mirrors.BACKUP_ZONE,
                    "instance_name": BACKUP,
                    "instance_id": BACKUP_ID,
                }
            },
        ),
        0,
        "bad_token",
    ),
    (
        "tampered payload: expiry extended",
        lambda m, a: _tamper(m.mint_token(a, BACKUP, now=time.time() - 7200), exp=2**33),
        0,
        "bad_token",
    ),
    (
        "expired at publishTime",
        lambda m, a: m.mint_token(a, BACKUP, now=time.time() - 7200),
        0,
        "token_expired",
    ),
    (
        "expired at publishTime, delivered much later",
        lambda m, a: m.mint_token(a, BACKUP, now=time.time() - 3 * 3600),
        -3600,
        "token_expired",
    ),
    (
        "issued after publishTime",
        lambda m, a: m.mint_token(a, BACKUP),
        -1800,
        "token_not_yet_valid",
    ),
    (
        "wrong audience",
        lambda m, _a: m.mint_token("//pubsub.googleapis.com/projects/x/topics/y", BACKUP),
        0,
        "wrong_audience",
    ),
    (
        "wrong issuer",
        lambda m, a: m.mint_token(a, BACKUP, overrides={"iss": "https://evil.example.com"}),
        0,
        "wrong_issuer",
    ),
    ("the other member's token", lambda m, a: m.mint_token(a, PRIMARY), 0, "identity_mismatch"),
    (
        "same name, another instance id (VM recreated)",
        lambda m, a: m.mint_token(
            a, BACKUP, overrides={"google": {"compute_engine": {"instance_id": "77"}}}
        ),
        0,
        "identity_mismatch",
    ),
    (
        "format=standard: no instance claims",
        lambda m, a: m.mint_token(a, BACKUP, full=False),
        0,
        "identity_mismatch",
    ),
]
BAD_TOKEN_COUNT = sum(1 for _, _, _, reason in BAD_TOKENS if reason != "missing_token")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("make_token", "publish_offset_s", "reason"),
    [(t, o, r) for _, t, o, r in BAD_TOKENS],
    ids=[name for name, _, _, _ in BAD_TOKENS],
)
def test_bad_identity_is_rejected_acknowledged_and_changes_nothing(
    compute: ComputeEmulator,
    metadata: MetadataEmulator,
    verifying_function: FunctionUnderTest,
    make_token: TokenFactory,
    publish_offset_s: float,
    reason: str,
) -> None:
    event = signed_event(mirrors.backup(), make_token(metadata, bound(mirrors.backup())))

    delivery = verifying_function.deliver(
        cloud_event(event, publish_time=rfc3339(publish_offset_s))
    )

    assert delivery.status == 200
    outcome = delivery.outcome
    assert (outcome["outcome"], outcome["error_reason"]) == ("rejected", reason)
    # The event names a configured member: its refusal may be a lost failover, so it alerts.
    assert outcome["from_member"] is True
    assert outcome["severity"] == "ERROR"
    assert outcome["retry"] is False
    assert outcome["identity"] is None
    assert outcome["error"]
    assert compute.mutations() == []


@pytest.mark.integration
def test_certs_endpoint_down_asks_for_redelivery_and_changes_nothing(
    compute: ComputeEmulator, metadata: MetadataEmulator, verifying_function: FunctionUnderTest
) -> None:
    token = metadata.mint_token(bound(mirrors.backup()), BACKUP)
    metadata.take_down()

    delivery = verifying_function.deliver(cloud_event(signed_event(mirrors.backup(), token)))

    assert delivery.status == 500
    assert delivery.outcome["retry"] is True
    assert delivery.outcome["error_reason"] == "IdentityUnavailable"
    assert "certs" in delivery.outcome["error"]
    assert compute.mutations() == []


@pytest.mark.integration
def test_certs_endpoint_error_then_redelivery_succeeds(
    metadata: MetadataEmulator, verifying_function: FunctionUnderTest
) -> None:
    token = metadata.mint_token(bound(mirrors.backup()), BACKUP)
    event = cloud_event(signed_event(mirrors.backup(), token))
    metadata.fail(503, path_contains="certs")

    failed = verifying_function.deliver(event)
    metadata.heal()
    redelivered = verifying_function.deliver(event)

    assert (failed.status, failed.outcome["error_reason"]) == (500, "IdentityUnavailable")
    assert redelivered.outcome["outcome"] == "moved"


# --------------------------------------------------------------------------------------------------
# Unit: the pure decision and the certs cache

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
EVENT = MirrorEvent(
    type="became_primary",
    mirror=mirrors.MIRROR,
    member="ISC_BACKUP_001",
    instance=InstanceRef(mirrors.PROJECT, mirrors.BACKUP_ZONE, BACKUP),
    instance_id=BACKUP_ID,
    occurred_at=NOW,
    identity_token="t",
    digest="d" * 64,
)
BOUND = f"{AUDIENCE}#{EVENT.digest}"


def claims(**changes: Any) -> dict[str, Any]:
    issued = int(NOW.timestamp()) - 60
    base: dict[str, Any] = {
        "iss": "https://accounts.google.com",
        "aud": BOUND,
        "iat": issued,
        "exp": issued + 3600,
        "google": {
            "compute_engine": {
                "project_id": mirrors.PROJECT,
                "project_number": 123456789012,
                "zone": mirrors.BACKUP_ZONE,
                "instance_id": BACKUP_ID,
                "instance_name": BACKUP,
            }
        },
    }
    return base | changes


def judge(token_claims: dict[str, Any], publish_time: datetime | None = NOW, **kw: Any) -> None:
    judge_claims(
        token_claims,
        EVENT,
        audience=kw.get("audience", AUDIENCE),
        publish_time=publish_time,
        now=kw.get("now", NOW),
        max_clock_skew_s=kw.get("skew", 300.0),
    )


def compute_claims(**changes: Any) -> dict[str, Any]:
    return {"google": {"compute_engine": claims()["google"]["compute_engine"] | changes}}


@pytest.mark.unit
@pytest.mark.parametrize(
    "token_claims",
    [claims(), claims(iss="accounts.google.com"), claims(exp=int(NOW.timestamp()) - 299)],
    ids=["valid", "short issuer", "expired within skew"],
)
def test_judge_accepts(token_claims: dict[str, Any]) -> None:
    judge(token_claims)


@pytest.mark.unit
def test_judge_uses_now_only_without_publish_time() -> None:
    issued = int(NOW.timestamp()) - 2 * 3600
    expired_now = claims(iat=issued, exp=issued + 3600)
    judge(expired_now, publish_time=datetime.fromtimestamp(issued + 30, UTC))
    with pytest.raises(EventRejected) as caught:
        judge(expired_now, publish_time=None)
    assert caught.value.reason == "token_expired"
    assert "now" in str(caught.value)


JUDGE_REJECTS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("no issuer", claims(iss=None), {}, "wrong_issuer"),
    ("foreign issuer", claims(iss="https://login.example.com"), {}, "wrong_issuer"),
    (
        "other audience",
        claims(aud="//pubsub.googleapis.com/projects/a/topics/b"),
        {},
        "wrong_audience",
    ),
    ("audience list", claims(aud=[AUDIENCE]), {}, "wrong_audience"),
    ("no audience known", claims(), {"audience": None}, "wrong_audience"),
    ("exp as text", claims(exp="tomorrow"), {}, "bad_token"),
    ("iat bool", claims(iat=True), {}, "bad_token"),
    ("iat absurd", claims(iat=2**60), {}, "bad_token"),
    ("expired beyond skew", claims(exp=int(NOW.timestamp()) - 301), {}, "token_expired"),
    ("expired, no skew", claims(exp=int(NOW.timestamp()) - 1), {"skew": 0.0}, "token_expired"),
    ("future beyond skew", claims(iat=int(NOW.timestamp()) + 301), {}, "token_not_yet_valid"),
    ("no google claims", claims(google=None), {}, "identity_mismatch"),
    ("google not an object", claims(google="x"), {}, "identity_mismatch"),
    (
        "other name",
        claims(**compute_claims(instance_name="isc-primary-001")),
        {},
        "identity_mismatch",
    ),
    ("other zone", claims(**compute_claims(zone=mirrors.PRIMARY_ZONE)), {}, "identity_mismatch"),
    ("other project", claims(**compute_claims(project_id="iris-prod-2")), {}, "identity_mismatch"),
    ("other id", claims(**compute_claims(instance_id="1")), {}, "identity_mismatch"),
    ("id missing", claims(**compute_claims(instance_id=None)), {}, "identity_mismatch"),
    (
        "name with newline",
        claims(**compute_claims(instance_name=BACKUP + "\n")),
        {},
        "identity_mismatch",
    ),
]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("token_claims", "options", "reason"),
    [(c, o, r) for _, c, o, r in JUDGE_REJECTS],
    ids=[n for n, _, _, _ in JUDGE_REJECTS],
)
def test_judge_rejects(token_claims: dict[str, Any], options: dict[str, Any], reason: str) -> None:
    with pytest.raises(EventRejected) as caught:
        judge(token_claims, **options)
    assert caught.value.reason == reason
    assert str(caught.value)


@pytest.mark.unit
def test_numeric_instance_id_claim_matches_its_text() -> None:
    judge(claims(**compute_claims(instance_id=int(BACKUP_ID))))


class FakeCerts:
    """A certs endpoint whose answers the test sets, and a clock the test moves."""

    def __init__(self) -> None:
        self.certs: dict[str, str] = {"k1": "pem1"}
        self.fetches = 0
        self.down = False
        self.now = 0.0

    def fetch(self, url: str) -> dict[str, str]:
        self.fetches += 1
        if self.down:
            raise IdentityUnavailable(f"{url} down")
        return dict(self.certs)

    def cache(self) -> CertsCache:
        return CertsCache(self.fetch, ttl_s=300, unknown_kid_refetch_s=5, clock=lambda: self.now)


@pytest.mark.unit
def test_certs_are_cached_for_their_ttl() -> None:
    fake = FakeCerts()
    cache = fake.cache()
    assert cache.certs("u", "k1") == {"k1": "pem1"}
    fake.now = 299
    cache.certs("u", "k1")
    assert fake.fetches == 1
    fake.now = 300
    cache.certs("u", "k1")
    assert fake.fetches == 2


@pytest.mark.unit
def test_unknown_kid_refetches_but_not_more_often_than_the_limit() -> None:
    fake = FakeCerts()
    cache = fake.cache()
    cache.certs("u", "k1")
    fake.certs["k2"] = "pem2"  # Google rotated its keys
    assert "k2" not in cache.certs("u", "k2")  # fetched 0 s ago: no refetch yet
    fake.now = 5
    assert cache.certs("u", "k2")["k2"] == "pem2"
    assert cache.certs("u", "forged-kid") == {"k1": "pem1", "k2": "pem2"}
    assert fake.fetches == 2


@pytest.mark.unit
def test_fetch_failure_raises_unless_fresh_certs_are_in_hand() -> None:
    fake = FakeCerts()
    cache = fake.cache()
    fake.down = True
    with pytest.raises(IdentityUnavailable):
        cache.certs("u", "k1")
    fake.down = False
    cache.certs("u", "k1")
    fake.down = True
    fake.now = 10
    assert cache.certs("u", "k9") == {"k1": "pem1"}  # unknown kid: the token fails on its own
    fake.now = 400
    with pytest.raises(IdentityUnavailable):
        cache.certs("u", "k1")  # expired certs are not used


@pytest.mark.unit
def test_verify_identity_needs_a_token_before_any_io() -> None:
    def no_fetch(url: str) -> dict[str, str]:
        raise AssertionError(f"fetched {url}")

    event = MirrorEvent(**{**EVENT.__dict__, "identity_token": None})
    with pytest.raises(EventRejected) as caught:
        verify_identity(
            None,
            event,
            config=IdentityConfig(required=True),
            source=AUDIENCE,
            publish_time=NOW,
            certs=CertsCache(no_fetch),
        )
    assert caught.value.reason == "missing_token"
