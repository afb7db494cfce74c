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


class PublisherError(Exception):
    """Base of every failure the publisher reports."""

    stage = "publisher"
    retryable = True


class ConfigError(PublisherError):
    """Configuration is missing or invalid; the message names the field and where it came from."""

    stage = "config"
    retryable = False


class NotPrimaryError(PublisherError):
    """A heartbeat was asked for but this member is not shown to be the primary."""

    stage = "primary_check"
    retryable = False


class MetadataError(PublisherError):
    """The metadata server did not give a usable answer."""

    stage = "metadata"


class MetadataRefused(MetadataError):
    """The metadata server answered 4xx: asking again gives the same answer."""

    retryable = False


class IdentityTokenError(MetadataError):
    """No instance identity token: the event is not sent without one (the function rejects it)."""

    stage = "identity"
    retryable = True


class PublishError(PublisherError):
    """Pub/Sub did not acknowledge the message."""

    stage = "publish"


class PublishRefused(PublishError):
    """Pub/Sub refused the message (topic missing, permission denied, invalid)."""

    retryable = False


class BudgetExceeded(PublisherError):
    """One attempt's time budget ran out before the step named in the message finished."""

    stage = "budget"
