"""Why a publish did not happen. `notify_become_primary` never raises: it turns these into a
failed `PublishResult` whose `stage` and `reason` come from the exception, and retries the whole
announcement while the error is `retryable` and the total time allows.

    PublisherError          base class; `stage` names the step that failed
    ├── ConfigError         configuration missing or invalid (message names the field); permanent
    ├── NotPrimaryError     heartbeat refused: this member is not shown to be primary; permanent
    ├── MetadataError       metadata server unreachable, failing or timing out; retryable
    │   ├── MetadataRefused     a 4xx answer (a value that does not exist); permanent
    │   └── IdentityTokenError  no instance identity token; retryable (the function requires one)
    ├── PublishError        Pub/Sub did not acknowledge the message in time; retryable
    │   └── PublishRefused  Pub/Sub refused it (topic missing, permission denied); permanent
    └── BudgetExceeded      an attempt's budget ran out (the message names the step); retryable
"""

from __future__ import annotations

from typing import Any


class PublisherError(Exception):
    """Base of every failure the publisher reports.

    Subclasses declare where they sit in the tree in their class line,
    `class X(PublisherError, stage="...", retryable=False)`; what they do not say is inherited.
    """

    stage = "publisher"
    retryable = True

    def __init_subclass__(
        cls, *, stage: str | None = None, retryable: bool | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if stage is not None:
            cls.stage = stage
        if retryable is not None:
            cls.retryable = retryable


class ConfigError(PublisherError, stage="config", retryable=False):
    """Configuration is missing or invalid; the message names the field and where it came from."""


class NotPrimaryError(PublisherError, stage="primary_check", retryable=False):
    """A heartbeat was asked for but this member is not shown to be the primary."""


class MetadataError(PublisherError, stage="metadata"):
    """The metadata server did not give a usable answer."""


class MetadataRefused(MetadataError, retryable=False):
    """The metadata server answered 4xx: asking again gives the same answer."""


class IdentityTokenError(MetadataError, stage="identity", retryable=True):
    """No instance identity token: the event is not sent without one (the function rejects it)."""


class PublishError(PublisherError, stage="publish"):
    """Pub/Sub did not acknowledge the message."""


class PublishRefused(PublishError, retryable=False):
    """Pub/Sub refused the message (topic missing, permission denied, invalid)."""


class BudgetExceeded(PublisherError, stage="budget"):
    """One attempt's time budget ran out before the step named in the message finished."""
