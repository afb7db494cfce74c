"""mirror-vip publisher: tell the Cloud Function that this IRIS mirror member became primary.

^ZMIRROR's NotifyBecomePrimary calls `notify_become_primary(mirror, member)`; it publishes a v1
event on Pub/Sub within a hard time budget and returns a `PublishResult` (never raises). Importing
this package is cheap: the Pub/Sub client library is imported on the first publish.
"""

from __future__ import annotations

from .config import PublisherConfig, load_config
from .core import PublishResult, announce, heartbeat, notify_become_primary
from .errors import (
    BudgetExceeded,
    ConfigError,
    IdentityTokenError,
    MetadataError,
    NotPrimaryError,
    PublisherError,
    PublishError,
)

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "IdentityTokenError",
    "MetadataError",
    "NotPrimaryError",
    "PublishError",
    "PublishResult",
    "PublisherConfig",
    "PublisherError",
    "announce",
    "heartbeat",
    "load_config",
    "notify_become_primary",
]
