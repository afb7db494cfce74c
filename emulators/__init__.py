"""Local stand-ins for the Google services mirror-vip talks to, in the style of pstest.

Each server owns its state, binds a free port, exposes its URL, answers with the real service's
paths, codes and error bodies, records what it received, offers fault injection, and documents
where it differs from the real API:

* `emulators.compute`: the Compute Engine API v1 (docs/compute-emulator.md);
* `emulators.metadata`: GCE metadata servers with instance identity tokens (docs/publisher.md);
* `emulators.pubsub`: a launcher for Google's own Pub/Sub emulator (a JVM).
"""

from typing import Any

JsonDict = dict[str, Any]
"""A JSON object as the APIs send it."""
