"""A function started by its first request, as Cloud Run starts an instance for an event.

Failovers are rare, so in production almost every one lands on a cold function: the push
arrives, an instance starts, imports `main.py`, and only then handles the event. `OnDemandFunction`
stands where the function's port would be; the first request (and the first after the function
was stopped) starts the `FunctionProcess` behind it and waits for it to be ready, then every
request is forwarded as it came. The e2e cold-failover benchmark measures through it.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from emulators.service import Service
from local.function_process import FunctionProcess

FORWARD_TIMEOUT_S = 600.0
"""As long as a push may wait for the function (the deployed ack deadline)."""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A pusher closing its keep-alive connection is not an error worth a traceback."""


class OnDemandFunction(Service):
    """An HTTP front on `port` that starts `function` (on its own port) when a request needs it.

    Args:
        port: Where Pub/Sub pushes (the stack's push endpoint).
        function: The function process, not started; its own port is behind this front.
    """

    def __init__(self, port: int, function: FunctionProcess) -> None:
        self.port = port
        self.function = function
        self.cold_starts = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        front = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Silent: the function's own log says what happened."""

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = front.forward(self.path, dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = _QuietServer(("127.0.0.1", self.port), Forward)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the front and the function behind it. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self.function.stop()

    def forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """Start the function if it is not running, then pass the request on as it came."""
        with self._lock:
            if not self.function.running:
                self.function.start()
                self.cold_starts += 1
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.function.port, timeout=FORWARD_TIMEOUT_S
        )
        try:
            kept = {k: v for k, v in headers.items() if k.lower() not in {"host", "connection"}}
            connection.request("POST", path, body=body, headers=kept)
            response = connection.getresponse()
            return response.status, response.read()
        except OSError as error:
            return 502, f"function unreachable: {error}".encode()
        finally:
            connection.close()
