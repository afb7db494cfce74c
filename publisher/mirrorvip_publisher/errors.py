"""Why a publish did not happen. `notify_become_primary` never raises: it turns these into a
failed `PublishResult` whose `stage` and `reason` come from the exception.

    PublisherError          base class; `stage` names the step that failed
    ├── ConfigError         configuration missing or invalid (message names the field); permanent
    ├── NotPrimaryError     heartbeat refused: this member is not (or cannot be shown to be) primary
    ├── MetadataError       metadata server unreachable, failing, or missing a value
    │   └── IdentityTokenError  the identity token could not be fetched
    ├── PublishError        Pub/Sub did not acknowledge the message
    │   └── PublishRefused  Pub/Sub refused it (topic missing, permission denied)
    └── BudgetExceeded      the total time budget ran out (the message names the step)
"""

from __future__ import annotations


class PublisherError(Exception):
    """Base of every failure the publisher reports."""

    stage = "publisher"


class ConfigError(PublisherError):
    """Configuration is missing or invalid; the message names the field and where it came from."""

    stage = "config"


class NotPrimaryError(PublisherError):
    """A heartbeat was asked for but this member is not shown to be the primary."""

    stage = "primary_check"


class MetadataError(PublisherError):
    """The metadata server did not give a usable answer."""

    stage = "metadata"


class IdentityTokenError(MetadataError):
    """No instance identity token (the event can still be sent without one)."""

    stage = "identity_token"


class PublishError(PublisherError):
    """Pub/Sub refused or did not acknowledge the message."""

    stage = "publish"


class PublishRefused(PublishError):
    """Pub/Sub refused the message (topic missing, permission denied, invalid)."""


class BudgetExceeded(PublisherError):
    """The total time budget ran out before the step named in the message finished."""

    stage = "budget"
