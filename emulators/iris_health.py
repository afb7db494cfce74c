"""IRIS mirror health endpoints (`/csp/user/mirror_status.cxw`) for every member, in this process.

Load balancers, and mirror-vip's corroboration, ask each member's web server whether it is the
mirror's primary: IRIS answers 200 `SUCCESS` on the primary and 503 `FAILED` on the others. One
server (port 0, like pstest) serves every member under its own prefix,
`/<instance>/csp/user/mirror_status.cxw`, so a config names a member with the `{instance}`
placeholder: `http://127.0.0.1:PORT/{instance}/csp/user/mirror_status.cxw`.

The scenario owns the truth: `set_primary(name)` makes one member answer `SUCCESS` (and every
other member of its mirror `FAILED`), `set_down(name)` makes a member give no answer (the
connection is closed without a response, as a dead VM's would fail), `set_lying(name)` makes one
answer `SUCCESS` whatever the mirror says (a compromised member). `requests()` lists which
members were asked.

Differences from IRIS: no CSP gateway, no authentication, no other path; an unknown member
answers 404.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from emulators.service import Service, stop_on_signals

STATUS_PATH = "/csp/user/mirror_status.cxw"


@dataclass(frozen=True)
class _Answer:
    status: int
    body: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    simulator: IrisHealthSimulator


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `requests()` instead."""

    def do_GET(self) -> None:
        name, _, rest = self.path.lstrip("/").partition("/")
        answer = self.server.simulator.answer(name, "/" + rest.split("?", 1)[0])
        if answer is None:
            self.close_connection = True  # a member that is down gives no answer at all
            return
        body = answer.body.encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class IrisHealthSimulator(Service):
    """The health endpoint of each member's IRIS web server.

    Args:
        mirrors: the instance names of each mirror's members, every one a backup until
            `set_primary`.
    """

    def __init__(self, *mirrors: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._mirrors = [tuple(members) for members in mirrors]
        self._members = {name for members in self._mirrors for name in members}
        self._primaries: set[str] = set()
        self._down: set[str] = set()
        self._lying: set[str] = set()
        self._requests: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.simulator = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="iris-health")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("IRIS health simulator not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url_template(self) -> str:
        """The corroboration URL for mirror-vip's config, with the `{instance}` placeholder."""
        return f"{self.url}/{{instance}}{STATUS_PATH}"

    # -- the scenario --------------------------------------------------------------------------

    def set_primary(self, name: str) -> None:
        """Make `name` its mirror's primary, and every other member of that mirror a backup."""
        with self._lock:
            if name not in self._members:
                raise KeyError(f"{name} is not a member")
            mirror = next(members for members in self._mirrors if name in members)
            self._primaries.difference_update(mirror)
            self._primaries.add(name)

    def set_backup(self, name: str) -> None:
        """`name` is not primary (mid-failover, or after IRIS demoted it)."""
        with self._lock:
            self._primaries.discard(name)

    def primaries(self) -> set[str]:
        with self._lock:
            return set(self._primaries)

    def set_down(self, name: str, down: bool = True) -> None:
        """A member whose web server does not answer (VM stopped, zone down)."""
        with self._lock:
            (self._down.add if down else self._down.discard)(name)

    def set_lying(self, name: str, lying: bool = True) -> None:
        """A compromised member that answers `SUCCESS` whatever the mirror says."""
        with self._lock:
            (self._lying.add if lying else self._lying.discard)(name)

    def requests(self) -> list[str]:
        """The members whose endpoint was asked, in order."""
        with self._lock:
            return list(self._requests)

    def answer(self, name: str, path: str) -> _Answer | None:
        """What the member's web server answers for path; None for no answer at all."""
        with self._lock:
            self._requests.append(name)
            if name not in self._members or path != STATUS_PATH:
                return _Answer(404, "Not Found")
            if name in self._down:
                return None
            if name in self._primaries or name in self._lying:
                return _Answer(200, "SUCCESS")
            return _Answer(503, "FAILED")


def main(argv: list[str] | None = None) -> None:
    """`python -m emulators.iris_health --member a --member b --primary a` (one mirror)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--member", action="append", required=True)
    parser.add_argument("--primary")
    args = parser.parse_args(argv)
    stop = stop_on_signals()
    with IrisHealthSimulator(args.member) as simulator:
        if args.primary:
            simulator.set_primary(args.primary)
        print(simulator.url_template, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
