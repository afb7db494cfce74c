"""A start/stop lifecycle usable as a context manager, shared by the local emulators and stack."""

from __future__ import annotations

from typing import Self


class Service:
    """Something that runs in the background: `start()` it and `stop()` it, or use `with`.

    `with` always stops it, on errors too, so `stop()` must be idempotent and safe to call on a
    half-started service.
    """

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
