"""mirror-vip's VIP mover: the code behind the Cloud Function's entry point in `main.py`.

Modules, from the pure core outwards:

- `errors`: the error hierarchy (retryable vs permanent).
- `config`: the mirror configuration, parsed once into frozen objects.
- `event`: the Pub/Sub message and event contract v1, parsed and validated.
- `plan`: what must change, computed from the observed NICs (pure).
- `compute`: the one boundary with the Compute Engine API.
- `mover`: reads, plans, applies and verifies one move.
- `outcome`: the one structured log line per event.
"""
