"""A Compute Engine API (v1) emulator for the calls that move a VIP (docs/compute-emulator.md).

Modules, by concept: `state` (loading a state file), `resources` (resources, invariants, planned
mutations), `operations` (zone operations and `requestId`s), `filters` (the list `filter` grammar),
`routes` (the discovery methods served), `errors` (Google's error bodies), `server` (HTTP and the
`ComputeEmulator` tests start), `urls` (resource URLs). Run one with `python -m emulators.compute`.
"""

from emulators.compute.server import ComputeEmulator, RecordedRequest
from emulators.compute.state import StateError

__all__ = ["ComputeEmulator", "RecordedRequest", "StateError"]
