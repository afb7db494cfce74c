"""The one entry to a mirror's holdings: the reader of its mode, as `handler.mover_for` picks
the mover of its mode."""

from __future__ import annotations

from ..compute import ComputeGateway
from ..config import MirrorConfig
from .holdings import Holdings, read_alias_holdings
from .route_holdings import read_route_holdings


def read_holdings(gateway: ComputeGateway, mirror: MirrorConfig, deadline: float) -> Holdings:
    """The mirror's holdings, read by its mode's reader."""
    if mirror.mode == "route":
        return read_route_holdings(gateway, mirror, deadline)
    return read_alias_holdings(gateway, mirror, deadline)
