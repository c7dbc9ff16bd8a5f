"""One HTTP connection pool for every API client of a process.

A connection carries no account state (each request has its own bearer token), so the
clients of many accounts can send through one pool and one TLS context instead of paying
~0.9 MB and ~30 ms of certificate loading each.
"""

from __future__ import annotations

import httpx


class SharedTransport(httpx.AsyncBaseTransport):
    """The pool, lent to every client: a client closing it is a no-op, so one account's client
    closing (a gateway tenant evicted) leaves it open for the others; its owner closes `inner`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None
