"""``Sandbox``: the public facade that tests, benchmarks and the CLI use."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .app import SandboxApp
from .config import SandboxConfig
from .faults import Faults
from .log import RequestRecord
from .runner import ServerThread, base_url, bind, serve_foreground
from .store import Store


class Sandbox:
    """A seeded simulation of the Alternative Payments API served over real HTTP on loopback.

    ``start()`` runs it in a background thread (tests), ``serve_forever()`` in the foreground
    (CLI). The oracle methods (``invoices()``, ``customers()``, ``payments()``,
    ``payments_by_invoice()``, ``requests()``) read its state directly so tests can compare what a
    client saw with what the API holds; each takes ``tenant`` (a client id) when several are served.
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
            self._app.faults.release_all()
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
    # ``tenant`` is a client id; None means the default tenant (``config.client_id``).

    @property
    def tenants(self) -> list[str]:
        """Client ids served, the default tenant first."""
        return list(self._app.tenants.by_id)

    def _store(self, tenant: str | None) -> Store:
        found = self._app.tenants.default if tenant is None else self._app.tenants.by_id.get(tenant)
        if found is None:
            raise KeyError(f"no sandbox tenant with client id {tenant!r}")
        return found.store

    def requests(
        self, method: str | None = None, path_prefix: str | None = None, tenant: str | None = None
    ) -> list[RequestRecord]:
        """Snapshot of completed requests in arrival order, optionally filtered (``tenant``: client id)."""
        return self._app.log.snapshot(method, path_prefix, tenant)

    def clear_log(self) -> None:
        """Forget logged requests (and reset ``token_requests``)."""
        self._app.log.clear()

    @property
    def token_requests(self) -> int:
        """``POST /oauth/token`` requests since the last ``clear_log``/``reset`` (any outcome, any tenant)."""
        return self._app.log.token_requests

    def token_requests_for(self, tenant: str) -> int:
        """``POST /oauth/token`` requests presenting this client id since the last ``clear_log``/``reset``."""
        return len(self.requests("POST", "/oauth/token", tenant=tenant))

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token issued since the last ``reset``, for any tenant, in issue order."""
        return self._app.tenants.issued

    def invoices(self, include_archived: bool = True, tenant: str | None = None) -> list[dict[str, Any]]:
        """Deep copies of every invoice's JSON, in API list order (newest first)."""
        return self._store(tenant).all_invoices_json(include_archived)

    def customers(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Deep copies of every customer's JSON, in API list order (newest first)."""
        return self._store(tenant).all_customers_json()

    def payments(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every payment's JSON (as served: no invoice id), in API list order (newest first)."""
        return self._store(tenant).all_payments_json()

    def payments_by_invoice(self, tenant: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """The sandbox's own invoice -> payments link (newest first), for independent balance checks.

        Invoices without payments are absent. Every payment belongs to exactly one invoice.
        """
        return self._store(tenant).payments_by_invoice_json()

    def today(self) -> dt.date:
        """The simulated API's UTC date (a fixed ``config.today`` stays put all day)."""
        return self._app.clock.today()

    def reset(self) -> None:
        """Regenerate every tenant's data from the config and clear the log, faults, tokens and rate limiters."""
        self._app.reset()

    @property
    def faults(self) -> Faults:
        if not self.config.testing:
            raise RuntimeError("fault injection needs SandboxConfig(testing=True)")
        return self._app.faults
