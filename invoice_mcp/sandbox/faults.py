"""Fault injection for tests: scripted failures, dropped connections, delays, broken bodies.

Each rule applies to the next ``n`` requests that match it (optional method, optional prefix of
the decoded path); when several rules match, the one added first is consumed first. Rules are
checked before rate limiting and auth, so ``/oauth/token`` can be faulted too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal, Protocol

FaultKind = Literal["fail", "drop", "delay", "malformed"]


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

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or path.startswith(self.path))


class Faults:
    """Thread-safe rule queue shared by the test thread (arming) and the server (consuming)."""

    def __init__(self, tokens: Expirable) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
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

    def malformed_next(self, n: int, *, method: str | None = None, path: str | None = None) -> None:
        """Answer 200 ``application/json`` with a truncated, unparsable body."""
        self._add(FaultRule("malformed", n, method, path))

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far, for every tenant (they get 401 from now on)."""
        self._tokens.expire_all()

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

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
