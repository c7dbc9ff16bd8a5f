"""Fault injection for tests: scripted failures, dropped connections, delays, held requests,
broken bodies.

Each rule applies to the next ``n`` requests that match it (optional method, optional prefix of
the decoded path); when several rules match, the one added first is consumed first. Rules are
checked before rate limiting and auth, so ``/oauth/token`` can be faulted too.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

FaultKind = Literal["fail", "drop", "delay", "hold", "malformed"]


class Hold:
    """Requests kept upstream until the test lets them go: a request in flight for as long as the
    test needs it, with no timing margin to miss under load."""

    def __init__(self, limit_s: float) -> None:
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._limit_s = limit_s
        self.arrived = 0
        """How many requests have reached the hold (the test waits for this, not for time to pass)."""

    def release(self) -> None:
        """Lets every held request (and any later one this hold takes) go on to be answered."""
        self._released.set()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    async def wait(self) -> None:
        """Server side: held in a worker thread, so the server's loop answers other requests meanwhile;
        a hold never released lets go after its limit, so a failing test cannot hang the server."""
        with self._lock:
            self.arrived += 1
        await asyncio.to_thread(self._released.wait, self._limit_s)


class Expirable(Protocol):
    def expire_all(self) -> None: ...


@dataclass
class FaultRule:
    kind: FaultKind
    remaining: int
    method: str | None = None
    path: str | None = None
    status: int = 500
    retry_after: str | None = None
    body: dict[str, Any] | None = None
    seconds: float = 0.0
    after_processing: bool = False
    hold: Hold | None = field(default=None, repr=False)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or path.startswith(self.path))


class Faults:
    """Thread-safe rule queue shared by the test thread (arming) and the server (consuming)."""

    def __init__(self, tokens: Expirable) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._holds: list[Hold] = []
        self._tokens = tokens

    def _add(self, rule: FaultRule) -> None:
        if rule.remaining < 1:
            raise ValueError("n must be >= 1")
        rule.method = rule.method.upper() if rule.method else None
        with self._lock:
            self._rules.append(rule)

    def fail_next(
        self,
        n: int,
        status: int,
        *,
        retry_after: str | None = None,
        method: str | None = None,
        path: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer with ``status`` and an HttpError body (or ``body``); the request is not applied."""
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        self._add(FaultRule("fail", n, method, path, status=status, retry_after=retry_after, body=body))

    def drop_next(
        self, n: int, *, method: str | None = None, path: str | None = None, after_processing: bool = False
    ) -> None:
        """Close the connection without a response (a transport error for the client).

        With ``after_processing`` the request is applied first (e.g. the invoice is created).
        """
        self._add(FaultRule("drop", n, method, path, after_processing=after_processing))

    def delay_next(self, n: int, seconds: float, *, method: str | None = None, path: str | None = None) -> None:
        """Sleep (without blocking the server) before answering normally."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._add(FaultRule("delay", n, method, path, seconds=seconds))

    def hold_next(self, n: int, *, method: str | None = None, path: str | None = None, limit_s: float = 60.0) -> Hold:
        """Keep the next ``n`` matching requests until ``release()`` (or ``limit_s``), then answer them
        normally; ``arrived`` counts those that reached it."""
        hold = Hold(limit_s)
        self._add(FaultRule("hold", n, method, path, hold=hold))
        with self._lock:
            self._holds.append(hold)
        return hold

    def malformed_next(self, n: int, *, method: str | None = None, path: str | None = None) -> None:
        """Answer 200 ``application/json`` with a truncated, unparsable body."""
        self._add(FaultRule("malformed", n, method, path))

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far, for every tenant (they get 401 from now on)."""
        self._tokens.expire_all()

    def clear(self) -> None:
        """Drops every rule, and lets any held request go."""
        with self._lock:
            self._rules.clear()
        self.release_all()

    def release_all(self) -> None:
        """Lets every held request go (also when the server stops, so none outlives it)."""
        with self._lock:
            holds, self._holds = self._holds, []
        for hold in holds:
            hold.release()

    def take(self, method: str, path: str) -> FaultRule | None:
        """Consume one use of the first matching rule (server side)."""
        with self._lock:
            for i, rule in enumerate(self._rules):
                if rule.matches(method, path):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        del self._rules[i]
                    return rule
        return None
