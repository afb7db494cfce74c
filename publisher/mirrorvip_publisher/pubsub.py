"""Publish one message with google-cloud-pubsub and wait for the server's ack, within a deadline.

The client library is imported here, lazily, on the first publish: importing it takes most of a
cold start, and `import mirrorvip_publisher` must stay cheap.

Why our own retry loop: with message ordering enabled the library replaces any retry policy with
an unlimited one (deadline 2**32 s), so a publish to an unreachable Pub/Sub would retry forever in
a background thread. We pass `retry=None` and retry ourselves.

Each try gets an RPC timeout of about half the time left, so that a hung first publish leaves
time for another. After a failed or timed-out try the client is discarded and the next try builds
a new one: the library pauses the ordering key after a failure, and while a hung publish is still
in flight it holds the key (the next message would queue behind it) and may hold a dead
connection. A new client has its own key state and its own channel.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

from .errors import PublishError, PublishRefused
from .key_file import key_file
from .metadata import Deadline

FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 1.0
# Not worth starting a try with less time than this.
MIN_ATTEMPT_SECONDS = 0.05
# A try's RPC timeout: this share of the time left, but at least MIN_RPC_SECONDS if there is
# that much (a cold channel with a token fetch takes a good fraction of a second).
RPC_SHARE = 0.5
MIN_RPC_SECONDS = 1.0
# How long past its RPC timeout we wait for a try's future: the library needs a moment to
# turn the expired RPC into an exception.
RESULT_GRACE_SECONDS = 0.2

_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def _credentials_mode(endpoint: str) -> str:
    if endpoint:
        return "emulator"
    if key_file():
        return "application-default"
    return "compute-engine"


def publisher_client(endpoint: str = "") -> Any:
    """A PublisherClient with message ordering, cached per endpoint for warm calls.

    Args:
        endpoint: `host:port` of a Pub/Sub emulator; empty for real Pub/Sub.

    The transport is built here, never by the library: given none, the library reads
    `PUBSUB_EMULATOR_HOST` and would send the failover wherever the environment points. For an
    emulator it is what the library does for that variable, made explicit: a plain-text gRPC
    channel to the endpoint, no credentials. On a VM we build Compute Engine credentials directly
    instead of `google.auth.default()`, which first probes for the metadata server with its own
    multi-second timeouts; the token is fetched lazily inside the publish RPC, so the RPC
    deadline bounds it.
    """
    key = (endpoint, _credentials_mode(endpoint))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _new_client(*key)
            _clients[key] = client
        return client


def _new_client(endpoint: str, mode: str) -> Any:
    import google.cloud.pubsub_v1 as pubsub_v1  # noqa: PLC0415, PLR0402
    import grpc  # type: ignore[import-untyped]  # noqa: PLC0415
    from google.pubsub_v1.services.publisher.transports import (  # noqa: PLC0415
        PublisherGrpcTransport,
    )

    if mode == "emulator":
        transport = PublisherGrpcTransport(host=endpoint, channel=grpc.insecure_channel(endpoint))
    else:
        credentials = None  # application default credentials: the key file named in the env
        if mode == "compute-engine":
            from google.auth import compute_engine  # noqa: PLC0415

            credentials = compute_engine.Credentials()  # type: ignore[no-untyped-call]
        transport = PublisherGrpcTransport(credentials=credentials, always_use_jwt_access=True)
    return pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=1),  # send at once
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
        transport=transport,
    )


def forget_clients() -> None:
    """Drop cached clients (tests that switch emulators), closing their channels."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.transport.close()


def discard_client(client: Any) -> None:
    """Stop using a client whose ordering key is paused or held, and close its channel.

    Closing cancels a publish still in flight, so it cannot arrive late as a duplicate.
    """
    with _clients_lock:
        for key, cached in list(_clients.items()):
            if cached is client:
                del _clients[key]
    client.transport.close()


def rpc_seconds(left: float) -> float:
    """The RPC timeout of a try that starts with `left` seconds of budget."""
    return min(left - RESULT_GRACE_SECONDS, max(MIN_RPC_SECONDS, left * RPC_SHARE))


def publish_message(
    topic: str,
    data: bytes,
    attributes: dict[str, str],
    ordering_key: str,
    deadline: Deadline,
    endpoint: str = "",
) -> str:
    """Publish and return the server-assigned message id.

    Args:
        endpoint: `host:port` of a Pub/Sub emulator; empty for real Pub/Sub.

    Raises:
        PublishRefused: permanent refusal (topic missing, permission denied), at once.
        PublishError: transient failures, once the deadline leaves no time for another try.
        BudgetExceeded: no time left to start.
    """
    deadline.require("publishing to Pub/Sub")
    from google.api_core import exceptions  # noqa: PLC0415

    permanent = (exceptions.NotFound, exceptions.PermissionDenied, exceptions.InvalidArgument)
    backoff = FIRST_BACKOFF_SECONDS
    tries = 0
    last_problem = "no try"
    while rpc_seconds(deadline.remaining()) >= MIN_ATTEMPT_SECONDS:
        client = publisher_client(endpoint)  # the first one imports the library: time passes
        timeout = rpc_seconds(deadline.remaining())
        if timeout < MIN_ATTEMPT_SECONDS:
            break
        tries += 1
        try:
            future = client.publish(
                topic, data, ordering_key=ordering_key, retry=None, timeout=timeout, **attributes
            )
            message_id: str = future.result(timeout=timeout + RESULT_GRACE_SECONDS)
            return message_id
        except concurrent.futures.TimeoutError:
            last_problem = f"no acknowledgement within {timeout:.2g} s"
        except permanent as exc:
            discard_client(client)
            raise PublishRefused(
                f"Pub/Sub refused the message for {topic}: {_describe(exc)}"
            ) from None
        except Exception as exc:  # noqa: BLE001 (any other library error is transient for us)
            last_problem = _describe(exc)
        discard_client(client)
        pause = min(backoff, deadline.remaining())
        if pause > 0:
            time.sleep(pause)  # retry backoff, bounded by the budget
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
    raise PublishError(
        f"Pub/Sub did not acknowledge within the {deadline.budget_seconds:.3g} s budget "
        f"(tries: {tries}, last: {last_problem})"
    )


def _describe(exc: BaseException) -> str:
    """One line: the gRPC status name and message, without the debug blob."""
    code = getattr(exc, "code", None)
    name = getattr(code, "name", None) or type(exc).__name__
    message = getattr(exc, "message", None) or str(exc)
    return f"{name}: {str(message).splitlines()[0][:300]}" if message else str(name)
