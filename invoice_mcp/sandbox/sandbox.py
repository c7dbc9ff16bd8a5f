"""``Sandbox``: the public facade that tests, benchmarks and the CLI use."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .app import SandboxApp
from .config import SandboxConfig
from .faults import Faults
from .log import RequestRecord
from .runner import ServerThread, base_url, bind, serve_foreground


class Sandbox:
    """A seeded simulation of the Alternative Payments API served over real HTTP on loopback.

    ``start()`` runs it in a background thread (tests), ``serve_forever()`` in the foreground
    (CLI). The oracle methods (``invoices()``, ``customers()``, ``requests()``) read its state
    directly so tests can compare what a client saw with what the API holds.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config if config is not None else SandboxConfig()
        self._app = SandboxApp(self.config)
        self._lock = threading.Lock()
        self._thread: ServerThread | None = None
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> str:
        """Serve in a daemon thread; returns the base URL once the socket is listening."""
        with self._lock:
            if self._thread is not None:
                return self.base_url
            thread = ServerThread(self._app, self.config.host, self.config.port)
            thread.start()
            self._thread = thread
            self.base_url = thread.url
            return self.base_url

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve in the foreground until SIGINT/SIGTERM; ``on_ready(base_url)`` once listening."""
        sock = bind(self.config.host, self.config.port)
        self.base_url = base_url(sock)
        if on_ready is not None:
            on_ready(self.base_url)
        with contextlib.suppress(KeyboardInterrupt):
            serve_foreground(self._app, sock)

    # -- oracle & log ------------------------------------------------------------------------------

    def requests(self, method: str | None = None, path_prefix: str | None = None) -> list[RequestRecord]:
        """Snapshot of completed requests in arrival order, optionally filtered."""
        return self._app.log.snapshot(method, path_prefix)

    def clear_log(self) -> None:
        """Forget logged requests (and reset ``token_requests``)."""
        self._app.log.clear()

    @property
    def token_requests(self) -> int:
        """``POST /oauth/token`` requests since the last ``clear_log``/``reset`` (any outcome)."""
        return self._app.log.token_requests

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token issued since the last ``reset``."""
        return self._app.tokens.issued

    def invoices(self, include_archived: bool = True) -> list[dict[str, Any]]:
        """Deep copies of every invoice's JSON, in API list order (newest first)."""
        return self._app.store.all_invoices_json(include_archived)

    def customers(self) -> list[dict[str, Any]]:
        """Deep copies of every customer's JSON, in API list order (newest first)."""
        return self._app.store.all_customers_json()

    def reset(self) -> None:
        """Regenerate data from the config and clear the log, faults, tokens and rate limiter."""
        self._app.reset()

    @property
    def faults(self) -> Faults:
        if not self.config.testing:
            raise RuntimeError("fault injection needs SandboxConfig(testing=True)")
        return self._app.faults
