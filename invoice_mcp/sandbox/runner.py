"""Running the sandbox app under uvicorn, in a background thread or in the foreground.

Two small uvicorn extensions:

* ``DroppingH11Protocol`` exposes each connection's transport to the app through a scope
  extension, so the "drop" fault can abort the TCP connection before any byte of a response
  is written (the client sees ``RemoteProtocolError``, never a status).
* ``_Server`` signals readiness through a ``threading.Event`` and stops promptly when asked
  (uvicorn's stock loop polls every 100 ms and then sleeps again during shutdown), so tests can
  start and stop many sandboxes cheaply; in the foreground a signal simply ends the serve call.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import TRANSPORT_EXTENSION

_SHUTDOWN_GRACE_S = 0.5


class DroppingH11Protocol(H11Protocol):
    """h11 protocol whose requests carry their transport in ``scope["extensions"]``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner: ASGIApp = self.app

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = self.transport
            await inner(scope, receive, send)

        self.app = app


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await super().startup(sockets=sockets)
        self.ready.set()

    async def main_loop(self) -> None:
        assert self._wake is not None
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            # Woken at once by request_stop(); the timeout keeps signal handling and Date headers going.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        tasks = set(self.server_state.tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=_SHUTDOWN_GRACE_S)
            for task in pending:
                task.cancel()
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        for sock in sockets or []:
            sock.close()
        await asyncio.sleep(0)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGINT/SIGTERM end ``serve_forever`` normally instead of being re-raised after shutdown."""
        super().handle_exit(sig, frame)
        self._captured_signals.clear()

    def request_stop(self) -> None:
        """Thread-safe: make ``main_loop`` return now."""
        self.should_exit = True
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._wake.set)


def bind(host: str, port: int) -> socket.socket:
    """Bind and listen before the server thread starts, so the port is known immediately."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets (no 40 ms stalls)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(app: ASGIApp) -> _Server:
    config = uvicorn.Config(
        app,
        http=DroppingH11Protocol,
        ws="none",
        lifespan="off",
        loop="asyncio",
        log_config=None,
        log_level=None,
        access_log=False,
        date_header=False,  # the app sends its own, from the simulated clock
        timeout_graceful_shutdown=1,
    )
    return _Server(config)


class ServerThread:
    """uvicorn on its own event loop in a daemon thread."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.sock = bind(host, port)
        self.url = base_url(self.sock)
        self._server = make_server(app)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"sandbox {self.url}", daemon=True)

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self.sock])
        except BaseException as exc:  # surfaced by start()
            self._error = exc
        finally:
            self._server.ready.set()

    def start(self) -> None:
        self._thread.start()
        self._server.ready.wait()
        if self._error is not None or not self._server.started:
            self.sock.close()
            raise RuntimeError(f"sandbox server failed to start: {self._error!r}")

    def stop(self) -> None:
        self._server.request_stop()
        self._thread.join(timeout=10)
        self.sock.close()


def serve_foreground(app: ASGIApp, sock: socket.socket) -> None:
    """Block serving on ``sock`` until SIGINT/SIGTERM (uvicorn installs the handlers)."""
    server = make_server(app)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
