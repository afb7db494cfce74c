"""Pub/Sub push delivery: the envelope a push subscription POSTs, and a relay that sends it.

Eventarc delivers in parallel; the Pub/Sub emulator pushes at most two messages at a time, which
would hide what happens when many mirrors fail over at once. `PushRelay` pulls with many threads
and POSTs the same envelope, acknowledging on a 2xx and letting anything else be redelivered, as
Eventarc does. `LocalStack` uses it when started with `delivery="relay"`.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from emulators import JsonDict
from emulators.pubsub import emulator_subscriber


def push_envelope(
    data: bytes,
    *,
    message_id: str,
    publish_time: str,
    subscription: str,
    attributes: Mapping[str, str] | None = None,
) -> JsonDict:
    """The JSON body a push subscription POSTs for one message (what functions-framework takes)."""
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": message_id,
            "publishTime": publish_time,
            "attributes": dict(attributes or {}),
        },
        "subscription": subscription,
    }


def post_push(endpoint: str, envelope: JsonDict, timeout: float = 600.0) -> int:
    """POST a push envelope as Pub/Sub does; returns the HTTP status (0: no answer at all)."""
    request = urllib.request.Request(  # noqa: S310 (the stack's own localhost endpoint)
        endpoint,
        data=json.dumps(envelope).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


class PushRelay:
    """Pull from a subscription with many threads and POST each message to the function as a
    push envelope: Eventarc's parallel delivery, which the emulator's push does not offer.

    A 2xx answer acknowledges; anything else (an exception in the function, a refused
    connection) leaves the message unacknowledged after a short pause, so it is redelivered.
    """

    PULL_TIMEOUT_S = 1.0
    NACK_PAUSE_S = 0.5

    def __init__(self, subscription: str, endpoint: str, threads: int, pubsub_host: str) -> None:
        self.subscription = subscription
        self.endpoint = endpoint
        self.threads = threads
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._client: Any = emulator_subscriber(pubsub_host)

    def start(self) -> PushRelay:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"push-relay-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=10)
        self._workers.clear()
        self._client.close()

    def _run(self) -> None:
        from google.api_core import exceptions  # noqa: PLC0415

        while not self._stop.is_set():
            try:
                response = self._client.pull(
                    subscription=self.subscription, max_messages=1, timeout=self.PULL_TIMEOUT_S
                )
            except (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable):
                continue
            except exceptions.GoogleAPICallError:
                if self._stop.wait(self.NACK_PAUSE_S):
                    return
                continue
            for received in response.received_messages:
                if self._deliver(received.message):
                    self._client.acknowledge(
                        subscription=self.subscription, ack_ids=[received.ack_id]
                    )
                else:
                    self._stop.wait(self.NACK_PAUSE_S)
                    self._client.modify_ack_deadline(
                        subscription=self.subscription,
                        ack_ids=[received.ack_id],
                        ack_deadline_seconds=0,
                    )

    def _deliver(self, message: Any) -> bool:
        envelope = push_envelope(
            message.data,
            message_id=message.message_id,
            publish_time=message.publish_time.rfc3339(),
            subscription=self.subscription,
            attributes=message.attributes,
        )
        return 200 <= post_push(self.endpoint, envelope) < 300
