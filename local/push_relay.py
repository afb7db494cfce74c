"""Eventarc-like parallel delivery, which the Pub/Sub emulator's push subscription lacks.
The emulator pushes at most two messages at a time, which would hide what happens when many
mirrors fail over at once; `PushRelay` pulls with many threads and POSTs the same envelope a
push subscription would, acknowledging on a 2xx and letting anything else be redelivered, as
Eventarc does. `LocalStack` uses it when started with `delivery="relay"`.
"""

from __future__ import annotations

import base64
import importlib
import json
import threading
import urllib.error
import urllib.request
from typing import Any


class PushRelay:
    """Pull from a subscription with many threads and POST each message to the function as a
    push envelope: Eventarc's parallel delivery, which the emulator's push does not offer.

    A 2xx answer acknowledges; anything else (an exception in the function, a refused
    connection) leaves the message unacknowledged after a short pause, so it is redelivered.
    """

    PULL_TIMEOUT_S = 1.0
    NACK_PAUSE_S = 0.5

    def __init__(self, subscription: str, endpoint: str, threads: int) -> None:
        self.subscription = subscription
        self.endpoint = endpoint
        self.threads = threads
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        pubsub_v1: Any = importlib.import_module("google.cloud.pubsub_v1")
        self._client: Any = pubsub_v1.SubscriberClient()

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
        envelope = {
            "message": {
                "data": base64.b64encode(message.data).decode(),
                "messageId": message.message_id,
                "publishTime": message.publish_time.rfc3339(),
                "attributes": dict(message.attributes),
            },
            "subscription": self.subscription,
        }
        request = urllib.request.Request(  # noqa: S310 (the stack's own localhost endpoint)
            self.endpoint,
            data=json.dumps(envelope).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as answer:  # noqa: S310
                return 200 <= int(answer.status) < 300
        except (OSError, urllib.error.URLError):
            return False
