"""`mirror-vip`, the operator's command: status, plan, move, drill, doctor.

It runs the function's own config, gateway, planner and mover under the operator's credentials.
Nothing here is imported by `main.py`: the function's cold start does not pay for it.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
