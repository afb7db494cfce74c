"""Cloud Function entry point of mirror-vip: `on_mirror_event`.

Deployed with `gcloud functions deploy --gen2 --source=function --entry-point=on_mirror_event
--trigger-topic=... --retry`. The configuration is read and the Compute clients are built when
the instance starts, so a bad `MIRROR_CONFIG` fails the deployment with the field it names, and
the first failover does not pay for client construction.

Environment:
    MIRROR_CONFIG / MIRROR_CONFIG_FILE   the mirrors (see README, "Configuration").
    COMPUTE_API_ENDPOINT                 e.g. http://127.0.0.1:PORT: use an emulator, anonymously.
    GOOGLE_CLOUD_PROJECT                 default project for mirrors that name none.
"""

from __future__ import annotations

import os

import functions_framework
from cloudevents.http import CloudEvent

from vipmover.compute import ComputeGateway
from vipmover.config import load_config
from vipmover.errors import RetryableError
from vipmover.handler import App, handle
from vipmover.outcome import log_outcome, outcome_logger


def _own_project() -> str | None:
    """The function's project, for mirrors whose config names none."""
    for name in ("GOOGLE_CLOUD_PROJECT", "GCP_PROJECT", "CLOUDSDK_CORE_PROJECT"):
        if os.environ.get(name):
            return os.environ[name]
    if os.environ.get("COMPUTE_API_ENDPOINT"):
        return None
    import google.auth  # noqa: PLC0415

    _, project = google.auth.default()
    return project


def _start() -> App:
    config = load_config(os.environ, default_project=_own_project)
    gateway = ComputeGateway(os.environ.get("COMPUTE_API_ENDPOINT") or None)
    gateway.warm_up()
    outcome_logger()
    return App(config, gateway)


APP = _start()


@functions_framework.cloud_event
def on_mirror_event(cloud_event: CloudEvent) -> None:
    """Move the mirror's VIP to the member that the event names.

    Permanent problems (bad or unauthorised events) are logged and acknowledged; retryable ones
    are logged and raised, so that Pub/Sub redelivers the event with backoff.
    """
    outcome = handle(APP, str(cloud_event["id"]), cloud_event.data, cloud_event.get("source"))
    log_outcome(outcome)
    if outcome.retry:
        raise RetryableError(outcome.error or "retryable failure")
