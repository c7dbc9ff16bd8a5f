"""Upstream requests made on behalf of one tool call, for the per-call log line.

A context variable, so concurrent calls count separately; kept apart from the
client so the server can use it without importing httpx at start-up."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class CallStats:
    requests: int = 0
    retries: int = 0
    statuses: list[int] = field(default_factory=list)


_stats: contextvars.ContextVar[CallStats | None] = contextvars.ContextVar("invoice_mcp_stats", default=None)


@contextmanager
def track() -> Iterator[CallStats]:
    stats = CallStats()
    reset = _stats.set(stats)
    try:
        yield stats
    finally:
        _stats.reset(reset)


def count(status: int | None, retry: bool) -> None:
    stats = _stats.get()
    if stats is not None:
        stats.requests += 1
        stats.retries += int(retry)
        if status is not None:
            stats.statuses.append(status)
