"""mirror-vip publisher: tell the Cloud Function that this IRIS mirror member became primary.

^ZMIRROR's NotifyBecomePrimary JOBs `notify_become_primary(mirror, member)`; it publishes a v1
event on Pub/Sub, each attempt within a hard time budget, retrying failed attempts (a missing
identity token included) for up to a total time, and returns a `PublishResult` (never raises).
Importing this package is cheap: the Pub/Sub client library is imported on the first publish.
"""

from __future__ import annotations

from .config import PublisherConfig, load_config
from .core import PublishResult, announce, heartbeat, notify_become_primary
from .errors import (
    BudgetExceeded,
    ConfigError,
    IdentityTokenError,
    MetadataError,
    MetadataRefused,
    NotPrimaryError,
    PublisherError,
    PublishError,
    PublishRefused,
)

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "IdentityTokenError",
    "MetadataError",
    "MetadataRefused",
    "NotPrimaryError",
    "PublishError",
    "PublishRefused",
    "PublishResult",
    "PublisherConfig",
    "PublisherError",
    "announce",
    "heartbeat",
    "load_config",
    "notify_become_primary",
]
