"""A TCP proxy in front of the Pub/Sub emulator whose first connections hang.

The publisher's gRPC channel holds one TCP connection. A server that accepts it and then never
answers is what a hung first publish looks like from the client (a stuck load balancer, a half-dead
connection): the RPC waits until its own deadline. This proxy accepts its first `hang` connections
and reads from them without ever forwarding or answering; later connections are forwarded to the
target both ways, so a client that reconnects gets through. Nothing a hung connection sent ever
reaches the emulator, so a message can only arrive through a later connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Self

from emulators.service import Service

CHUNK = 65536


class HangingProxy(Service):
    """Listens on 127.0.0.1:<free port>; `host` is the publisher's `pubsub_endpoint`."""

    def __init__(self, target: str, hang: int = 1) -> None:
        target_host, _, target_port = target.rpartition(":")
        self.target = (target_host, int(target_port))
        self.hang = hang
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def host(self) -> str:
        assert self._listener is not None, "not started"
        port: int = self._listener.getsockname()[1]
        return f"127.0.0.1:{port}"

    def start(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.1)  # so the accept loop sees stop()
        self._listener = listener
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            sockets = [s for s in (self._listener, *self._sockets) if s is not None]
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in list(self._threads):
            thread.join(timeout=5)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            self._track(client)
            self.accepted += 1
            if self.accepted <= self.hang:
                self._spawn(self._swallow, client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._track(upstream)
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    @staticmethod
    def _swallow(client: socket.socket) -> None:
        """Read and drop everything: the client sees a server that never answers."""
        with contextlib.suppress(OSError):
            while client.recv(CHUNK):
                pass

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(CHUNK):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
