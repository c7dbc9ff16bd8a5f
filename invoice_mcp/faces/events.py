"""A bounded in-memory event store: resumable SSE streams for the HTTP transport.

With an event store the SDK's streamable HTTP transport (2025-11-25 sessions; the 2026-07-28 era
has no resumption in the SDK) opens every SSE response with a *priming event* (an id, empty data
and the ``retry`` hint) and stores every message it sends. A client whose connection drops, for
example in the middle of a long ``summarize_invoices``, reconnects with ``GET`` and
``Last-Event-ID`` and receives what it missed, including the final result: the tool call goes on
running on the server and is not repeated.

Memory is bounded by the number of events and by their size (the JSON of each message); the oldest
events go first. A client that comes back after its events were evicted gets nothing replayed.

Sessions are kept apart. The SDK shares one store between all sessions and names a stream by the
JSON-RPC request id alone, which two sessions routinely both use (``1``, ``2``, ...); replaying by
stream id would hand one session another's results. So each event is filed under the session of
the transport that stores it, and a replay is served only inside the session that stored the
event. The SDK does not pass the session to the store, so it is read from the calling transport
(the caller's frames: ``StreamableHTTPServerTransport`` methods and their closures). If it cannot
be found (a future SDK shape), the event is not kept: no resumption, never a leak.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mcp.server.streamable_http import (
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamableHTTPServerTransport,
    StreamId,
)
from mcp.types import JSONRPCMessage

log = logging.getLogger("invoice_mcp.faces.events")

MAX_EVENTS: Final = 10_000
MAX_BYTES: Final = 16 * 1024 * 1024
RETRY_MS: Final = 1000
"""The reconnect delay suggested to clients in the priming event (milliseconds)."""
_OVERHEAD: Final = 200
"""Bytes counted per event on top of its JSON (ids, bookkeeping)."""
_MAX_FRAMES: Final = 8


@dataclass(frozen=True, slots=True)
class _Event:
    session: str
    stream: StreamId
    message: JSONRPCMessage | None
    size: int


def calling_session() -> str | None:
    """The session id of the SDK transport that called into the store, if any."""
    frame = sys._getframe(2)  # 0: here; 1: the store method; 2: its caller (a transport method or closure)
    for _ in range(_MAX_FRAMES):
        owner = frame.f_locals.get("self")
        if isinstance(owner, StreamableHTTPServerTransport):
            return owner.mcp_session_id
        if frame.f_back is None:
            return None
        frame = frame.f_back
    return None


class BoundedEventStore(EventStore):
    """At most ``max_events`` events and ``max_bytes`` of message JSON, oldest evicted first."""

    def __init__(
        self,
        *,
        max_events: int = MAX_EVENTS,
        max_bytes: int = MAX_BYTES,
        session_of: Callable[[], str | None] | None = None,
    ) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("max_events and max_bytes must be positive")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: OrderedDict[EventId, _Event] = OrderedDict()
        self._bytes = 0
        self._session_of = session_of or calling_session

    @property
    def size(self) -> tuple[int, int]:
        """(events, bytes) currently held."""
        return len(self._events), self._bytes

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = secrets.token_urlsafe(18)  # 144 random bits: an id names no other, in no process
        session = self._session_of()
        if session is None:
            log.debug("event not kept: no session found for its stream")
            return event_id
        body = 0 if message is None else len(message.model_dump_json(by_alias=True, exclude_none=True))
        size = body + _OVERHEAD
        if size > self.max_bytes:
            log.warning("an event of %d bytes exceeds the replay budget; it cannot be replayed", size)
            return event_id
        while self._events and (len(self._events) >= self.max_events or self._bytes + size > self.max_bytes):
            _, old = self._events.popitem(last=False)
            self._bytes -= old.size
        self._events[event_id] = _Event(session, stream_id, message, size)
        self._bytes += size
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        anchor = self._events.get(last_event_id)
        if anchor is None:
            return None
        session = self._session_of()
        if session is None or session != anchor.session:
            log.warning("refused to replay events of another session")
            return None
        found = False
        pending: list[EventMessage] = []
        for event_id, event in self._events.items():
            if event_id == last_event_id:
                found = True
                continue
            if found and event.session == anchor.session and event.stream == anchor.stream and event.message:
                pending.append(EventMessage(event.message, event_id))
        for item in pending:  # collected first: sending yields, and the store may change meanwhile
            await send_callback(item)
        return anchor.stream
