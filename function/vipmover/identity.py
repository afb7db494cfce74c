"""Verified identity: an event may only move the VIP to the VM that signed it.

The publisher attaches the sending VM's instance identity token (a Google-signed RS256 JWT,
`format=full`). With `identity.required` the function checks, in this order: the token is
there and Google signed it (certs from `identity.certs_url`), its issuer is Google, its
audience is the configured one (or else the topic, the CloudEvent source) bound to this very event
(`#<sha256 of the event without its token>`, see `canonical`), it was valid when Pub/Sub accepted
the message (`publishTime`, not now: redeliveries can outlive the 1 h token) and issued at most
`MAX_TOKEN_AGE_S` before it, the `publishTime` is not in the future, and its
`google.compute_engine` claims name exactly the event's `instance`. Without that last check a
compromised member could claim the VIP for the other member, or for nobody. That a token is used
once is checked later, against the member's labels (`replay`).

`judge_claims` is the pure decision on already-verified claims; `verify_identity` adds the
signature check; `CertsCache` is the one piece of I/O (the signing certs, cached in the process
for a few minutes, refetched when a token names a key it does not know).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import google.auth.exceptions
import google.auth.jwt
import google.auth.transport.requests

from .config import IdentityConfig
from .errors import EventRejected, IdentityUnavailable
from .event import MirrorEvent

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
CERTS_TTL_S = 300.0
UNKNOWN_KID_REFETCH_S = 5.0
"""An unknown `kid` refetches at most this often, so forged tokens cannot hammer the endpoint."""
CERTS_TIMEOUT_S = 10.0
MAX_TOKEN_AGE_S = 60.0
"""A token issued longer than this before its message was published is refused: the publisher
fetches one per event, just before publishing, so an older one is a token kept for later."""
MAX_TIMESTAMP = 2**40
"""`iat`/`exp` beyond this (year ~36800) are not timestamps Google would sign."""

Certs = Mapping[str, str]
CertsFetch = Callable[[str], Certs]


def fetch_certs(url: str) -> Certs:
    """Google's `{kid: PEM certificate}` map at url, through google-auth's requests transport.

    Raises:
        IdentityUnavailable: the endpoint did not answer 200 with a JSON object of strings.
    """
    request = google.auth.transport.requests.Request()
    try:
        response = request(url, method="GET", timeout=CERTS_TIMEOUT_S)
    except google.auth.exceptions.TransportError as err:
        raise IdentityUnavailable(f"cannot fetch signing certs from {url}: {err}") from None
    if response.status != 200:
        raise IdentityUnavailable(f"signing certs at {url} answered HTTP {response.status}")
    try:
        certs = json.loads(response.data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise IdentityUnavailable(f"signing certs at {url} are not JSON") from None
    if not isinstance(certs, dict) or not all(isinstance(v, str) for v in certs.values()):
        raise IdentityUnavailable(f"signing certs at {url} are not a {{kid: PEM}} map")
    return certs


class CertsCache:
    """Signing certs per URL, kept for `ttl_s`; refetched early when a token's kid is unknown.

    Thread-safe: one function instance may serve concurrent requests.
    """

    def __init__(
        self,
        fetch: CertsFetch = fetch_certs,
        *,
        ttl_s: float = CERTS_TTL_S,
        unknown_kid_refetch_s: float = UNKNOWN_KID_REFETCH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._unknown_kid_refetch_s = unknown_kid_refetch_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Certs]] = {}

    def certs(self, url: str, kid: str | None) -> Certs:
        """The certs at url, fresh enough, and containing kid when Google has published it.

        Raises:
            IdentityUnavailable: a needed fetch failed (stale certs are not used past their TTL).
        """
        with self._lock:
            now = self._clock()
            entry = self._entries.get(url)
            if entry is not None:
                fetched_at, certs = entry
                age = now - fetched_at
                kid_known = kid is None or kid in certs
                if age < self._ttl_s and (kid_known or age < self._unknown_kid_refetch_s):
                    return certs
            try:
                certs = dict(self._fetch(url))
            except IdentityUnavailable:
                if entry is not None and now - entry[0] < self._ttl_s:
                    return entry[1]  # only an unknown kid asked: the token will fail on its own
                raise
            self._entries[url] = (self._clock(), certs)
            return certs


def _timestamp(claims: Mapping[str, Any], key: str) -> int:
    value = claims.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIMESTAMP:
        raise EventRejected("bad_token", f"identity token claim '{key}' is not a timestamp")
    return value


def judge_claims(
    claims: Mapping[str, Any],
    event: MirrorEvent,
    *,
    audience: str | None,
    publish_time: datetime | None,
    now: datetime,
    max_clock_skew_s: float,
) -> None:
    """Decide whether signature-checked claims let this event move the VIP.

    Args:
        claims: The token's payload, its signature already verified.
        event: The event carrying the token; its `instance` must be the token's VM.
        audience: The expected `aud`; None when neither the config nor the CloudEvent has one.
        publish_time: When Pub/Sub accepted the message; validity is judged then (now if None).
        now: The current time, used only when publish_time is None.
        max_clock_skew_s: Tolerance on `iat` and `exp`.

    Raises:
        EventRejected: `bad_token`, `wrong_issuer`, `wrong_audience`, `token_expired`,
            `token_not_yet_valid`, `token_stale`, `publish_time_in_future` or
            `identity_mismatch`.
    """
    issuer = claims.get("iss")
    if issuer not in GOOGLE_ISSUERS:
        raise EventRejected("wrong_issuer", f"identity token issuer {str(issuer)[:80]!r}")
    if audience is None:
        raise EventRejected(
            "wrong_audience", "no audience to check: identity.audience unset, no CloudEvent source"
        )
    expected = bound_audience(audience, event)
    token_audience = claims.get("aud")
    if token_audience != expected:
        raise EventRejected(
            "wrong_audience",
            f"identity token audience {str(token_audience)[:160]!r}, expected {expected!r} "
            "(the topic bound to this event)",
        )
    _judge_times(claims, publish_time, now, max_clock_skew_s)
    _match_instance(claims, event)


def bound_audience(audience: str, event: MirrorEvent) -> str:
    """The audience a token for this one event carries: `<audience>#<event digest>`."""
    return f"{audience}#{event.digest}"


def _judge_times(
    claims: Mapping[str, Any], publish_time: datetime | None, now: datetime, skew_s: float
) -> None:
    """Valid at publishTime, issued just before it, and publishTime not ahead of our clock."""
    issued, expires = _timestamp(claims, "iat"), _timestamp(claims, "exp")
    moment = publish_time or now
    at = moment.timestamp()
    when = "publishTime" if publish_time else "now"
    if publish_time is not None and at > now.timestamp() + skew_s:
        raise EventRejected(
            "publish_time_in_future",
            f"publishTime is {round(at - now.timestamp())} s ahead of the function's clock",
        )
    if at > expires + skew_s:
        raise EventRejected(
            "token_expired", f"identity token expired {round(at - expires)} s before {when}"
        )
    if at < issued - skew_s:
        raise EventRejected(
            "token_not_yet_valid", f"identity token issued {round(issued - at)} s after {when}"
        )
    if at - issued > MAX_TOKEN_AGE_S:  # both clocks are Google's: no skew here
        raise EventRejected(
            "token_stale",
            f"identity token issued {round(at - issued)} s before {when} (at most "
            f"{MAX_TOKEN_AGE_S:g} s): a token kept for later is not accepted",
        )


def _match_instance(claims: Mapping[str, Any], event: MirrorEvent) -> None:
    """The token's VM must be exactly the event's `instance`: a VM can only claim for itself."""
    google_claims = claims.get("google")
    compute = google_claims.get("compute_engine") if isinstance(google_claims, Mapping) else None
    if not isinstance(compute, Mapping):
        raise EventRejected(
            "identity_mismatch",
            "identity token has no google.compute_engine claims (the publisher must ask for "
            "format=full)",
        )
    wanted = {
        "project_id": event.instance.project,
        "zone": event.instance.zone,
        "instance_name": event.instance.name,
        "instance_id": event.instance_id,
    }
    for key, expected in wanted.items():
        value = compute.get(key)
        is_id = isinstance(value, str | int) and not isinstance(value, bool)
        actual = str(value) if is_id else None
        if actual != expected:
            raise EventRejected(
                "identity_mismatch",
                f"identity token is for {key} {str(value)[:80]!r}, the event claims {expected!r}",
            )


def verify_identity(
    token: str | None,
    event: MirrorEvent,
    *,
    config: IdentityConfig,
    source: str | None,
    publish_time: datetime | None,
    certs: CertsCache,
    now: datetime | None = None,
) -> Mapping[str, Any]:
    """Check the event's identity token end to end; return its verified claims.

    google-auth checks the signature, but judges `iat`/`exp` against now; we judge them at
    publishTime in `judge_claims`, so its own time check is widened to cover this token's times.

    Raises:
        EventRejected: `missing_token`, `bad_token`, or any reason of `judge_claims`.
        IdentityUnavailable: the signing certs could not be fetched (retryable).
    """
    if not token:
        raise EventRejected("missing_token", "identity is required and the event has no token")
    moment = now or datetime.now(UTC)
    try:
        header = google.auth.jwt.decode_header(token)  # type: ignore[no-untyped-call]
        unverified = google.auth.jwt.decode(token, verify=False)  # type: ignore[no-untyped-call]
    except (google.auth.exceptions.GoogleAuthError, ValueError) as err:
        raise EventRejected("bad_token", f"identity token is malformed: {err}"[:300]) from None
    kid = header.get("kid")
    issued, expires = _timestamp(unverified, "iat"), _timestamp(unverified, "exp")
    now_s = moment.timestamp()
    widened_skew = max(abs(now_s - issued), abs(now_s - expires)) + 60
    signing_certs = certs.certs(config.certs_url, kid if isinstance(kid, str) else None)
    try:
        claims: Mapping[str, Any] = google.auth.jwt.decode(  # type: ignore[no-untyped-call]
            token, certs=signing_certs, audience=None, clock_skew_in_seconds=widened_skew
        )
    except (google.auth.exceptions.GoogleAuthError, ValueError, TypeError) as err:
        raise EventRejected("bad_token", f"identity token not verified: {err}"[:300]) from None
    judge_claims(
        claims,
        event,
        audience=config.audience or source,
        publish_time=publish_time,
        now=moment,
        max_clock_skew_s=config.max_clock_skew_s,
    )
    return claims
