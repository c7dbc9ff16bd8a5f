"""Upstream requests made on behalf of one tool call, for the per-call log line.

A context variable, so concurrent calls count separately; kept apart from the
client so the server can use it without importing httpx at start-up."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class CallStats:
    requests: int = 0
    retries: int = 0


_stats: contextvars.ContextVar[CallStats | None] = contextvars.ContextVar("invoice_mcp_stats", default=None)


@contextmanager
def track() -> Iterator[CallStats]:
    stats = CallStats()
    reset = _stats.set(stats)
    try:
        yield stats
    finally:
        _stats.reset(reset)


def count(retry: bool) -> None:
    stats = _stats.get()
    if stats is not None:
        stats.requests += 1
        stats.retries += int(retry)
