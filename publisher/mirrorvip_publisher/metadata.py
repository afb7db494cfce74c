"""Read this VM's identity from the GCE metadata server, within a deadline.

stdlib `urllib` only: it imports in milliseconds, and proxies are switched off explicitly (the
metadata server is link-local; an `http_proxy` in IRIS's environment must not capture it).
Every request's timeout is cut to what is left of the caller's budget; 5xx answers and connection
errors are retried with a short backoff while time remains, 4xx answers are not.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from .errors import BudgetExceeded, IdentityTokenError, MetadataError, MetadataRefused

METADATA_ROOT = "/computeMetadata/v1/"
# One slow answer should not eat the whole budget: leave time for a retry.
MAX_REQUEST_SECONDS = 2.0
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 0.5
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Deadline:
    """The end of the time budget, on the monotonic clock."""

    def __init__(self, budget_seconds: float, start: float | None = None) -> None:
        self.budget_seconds = budget_seconds
        self.end = (time.monotonic() if start is None else start) + budget_seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def require(self, step: str, at_least: float = 0.0) -> float:
        """Remaining seconds, or BudgetExceeded naming the step that could not start."""
        left = self.remaining()
        if left <= at_least:
            raise BudgetExceeded(
                f"time budget of {self.budget_seconds:.3g} s ran out before {step}"
            )
        return left


@dataclass(frozen=True)
class InstanceFacts:
    """What the event says about the sending VM (`instance` in the v1 contract)."""

    project: str
    zone: str
    name: str
    id: str

    def as_event_field(self) -> dict[str, str]:
        return {"project": self.project, "zone": self.zone, "name": self.name, "id": self.id}


class MetadataClient:
    """GET values from one metadata server (`host[:port]`, as in GCE_METADATA_HOST)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.base_url = f"http://{host}{METADATA_ROOT}"

    def get(self, path: str, deadline: Deadline, query: dict[str, str] | None = None) -> str:
        """One metadata value as text.

        Raises:
            MetadataRefused: 4xx answer.
            MetadataError: 5xx/unreachable until the deadline.
        """
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        backoff = FIRST_BACKOFF_SECONDS
        last_problem = "not tried"
        while True:
            left = deadline.remaining()
            if left <= 0:
                raise MetadataError(
                    f"metadata server {self.host} gave no answer for {path} within the "
                    f"{deadline.budget_seconds:.3g} s budget (last: {last_problem})"
                )
            request = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})  # noqa: S310
            try:
                with _NO_PROXY_OPENER.open(request, timeout=min(left, MAX_REQUEST_SECONDS)) as resp:
                    body: bytes = resp.read()
                    return body.decode("utf-8").strip()
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code < 500:
                    raise MetadataRefused(
                        f"metadata server {self.host} answered {exc.code} for {path}"
                    ) from None
                last_problem = f"HTTP {exc.code}"
            except TimeoutError:  # socket.timeout on Python 3.9 lands in OSError below
                last_problem = "timed out"
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last_problem = f"unreachable: {reason}"
            pause = min(backoff, deadline.remaining())
            if pause > 0:
                time.sleep(pause)  # retry backoff, bounded by the budget
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def instance_facts(self, deadline: Deadline) -> InstanceFacts:
        """Project, zone, name and numeric id of this VM."""
        values = {}
        for key, path in (
            ("project", "project/project-id"),
            ("zone", "instance/zone"),
            ("name", "instance/name"),
            ("id", "instance/id"),
        ):
            value = self.get(path, deadline)
            if not value:
                raise MetadataError(f"metadata server {self.host} returned an empty {path}")
            values[key] = value
        # instance/zone is `projects/NUMBER/zones/ZONE`.
        values["zone"] = values["zone"].rsplit("/", 1)[-1]
        return InstanceFacts(**values)

    def identity_token(self, audience: str, deadline: Deadline) -> str:
        """A `format=full` instance identity token for audience."""
        try:
            token = self.get(
                "instance/service-accounts/default/identity",
                deadline,
                {"audience": audience, "format": "full"},
            )
        except MetadataError as exc:
            raise IdentityTokenError(f"no identity token: {exc}") from None
        if token.count(".") != 2:
            raise IdentityTokenError("no identity token: the metadata server's answer is not a JWT")
        return token


_facts_cache: dict[str, InstanceFacts] = {}
_facts_lock = threading.Lock()


def cached_instance_facts(client: MetadataClient, deadline: Deadline) -> InstanceFacts:
    """Instance facts never change for a VM: read them once per process and metadata host."""
    with _facts_lock:
        cached = _facts_cache.get(client.host)
    if cached is not None:
        return cached
    facts = client.instance_facts(deadline)
    with _facts_lock:
        _facts_cache[client.host] = facts
    return facts


def forget_instance_facts() -> None:
    """Drop the cache (tests that move a process between emulated VMs)."""
    with _facts_lock:
        _facts_cache.clear()
