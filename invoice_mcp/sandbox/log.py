"""The request log: what the sandbox received and answered, for assertions in tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestRecord:
    t: float
    """``time.monotonic()`` (or the configured ``ticker``) at arrival."""
    method: str
    path: str
    """Decoded path as routed, e.g. ``/invoices/inv_123``."""
    raw_path: str
    """Exactly as received on the wire (percent-encoding preserved), without the query."""
    query: dict[str, str]
    """Decoded query parameters (last value wins)."""
    raw_query: str
    status: int
    """Status returned; 0 if the connection was dropped."""
    auth: str | None
    """"basic" | "bearer" | None."""
    token: str | None
    """The bearer token presented, if any."""
    body: bytes
    tenant: str | None = None
    """Client id of the tenant the request was for: the Basic client id when it is a known one
    (even with a wrong secret), else the owner of the bearer token (even an expired one)."""


class RequestLog:
    """Completed requests in arrival order (sequence numbers are taken at arrival)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._records: list[tuple[int, RequestRecord]] = []
        self.token_requests = 0

    def arrive(self, method: str, path: str) -> int:
        with self._lock:
            self._seq += 1
            if method == "POST" and path == "/oauth/token":
                self.token_requests += 1
            return self._seq

    def add(self, seq: int, record: RequestRecord) -> None:
        with self._lock:
            self._records.append((seq, record))

    def snapshot(
        self, method: str | None = None, path_prefix: str | None = None, tenant: str | None = None
    ) -> list[RequestRecord]:
        with self._lock:
            records = sorted(self._records, key=lambda sr: sr[0])
        return [
            r
            for _, r in records
            if (method is None or r.method == method.upper())
            and (path_prefix is None or r.path.startswith(path_prefix))
            and (tenant is None or r.tenant == tenant)
        ]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self.token_requests = 0
