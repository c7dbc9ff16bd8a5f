"""The write journal: every write this server makes, recorded durably before the upstream call
(the intent) and after it (the outcome), in the state store.

It answers "what did you do, and who approved it?", it is the duplicate guard's memory across
restarts, and it is what makes a batch resumable: a row whose intent has no certain outcome is
checked against the API before anything is sent again. Arguments are stored with secrets and
links redacted; rows of one account (``scope``, a digest of the credentials) never mix with
another's.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from invoice_mcp.clock import Now
from invoice_mcp.state import AUTO_ID, LazyStore, Row, Schema, Tx, step
from invoice_mcp.text import clean

Outcome = Literal["pending", "created", "archived", "restored", "failed", "possibly", "duplicate", "unchanged"]
"""pending: intent recorded, no outcome yet (in flight, or the process died); possibly: the API's
answer was lost, the invoice may exist."""

JOURNAL_SCHEMA: Final = Schema.of(
    "journal",
    step(
        f"""CREATE TABLE journal_entries (
            id {AUTO_ID},
            scope TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            actor TEXT NOT NULL,
            tool TEXT NOT NULL,
            arguments TEXT NOT NULL,
            confirmed TEXT NOT NULL,
            customer_id TEXT,
            fingerprint TEXT,
            batch_id TEXT,
            batch_row BIGINT,
            outcome TEXT NOT NULL,
            invoice_id TEXT,
            invoice_number TEXT,
            total TEXT,
            detail TEXT,
            duration_ms BIGINT
        )""",
        "CREATE INDEX journal_by_time ON journal_entries (scope, started_at)",
        "CREATE INDEX journal_by_fingerprint ON journal_entries (scope, fingerprint)",
        "CREATE INDEX journal_by_batch ON journal_entries (scope, batch_id, batch_row)",
    ),
)

_SECRET_KEYS: Final = ("secret", "token", "password", "authorization", "link", "url", "api_key", "apikey")
MAX_TEXT: Final = 500
_URL: Final = re.compile(r"(?i)\b(?:https?|ftp)://\S+")


def iso(t: datetime) -> str:
    """Fixed-width UTC text, so string order is time order in either engine."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def scope_of(cache_key: str) -> str:
    """The account's identity in the journal: a digest, never the client id or the secret."""
    return hashlib.sha256(f"journal|{cache_key}".encode()).hexdigest()[:32]


def redact(value: Any, depth: int = 0) -> Any:
    """Arguments as recorded: secrets and links replaced, text cleaned and bounded."""
    if depth > 6:
        return "…"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in list(value.items())[:100]:
            key = clean(str(k), 64)
            out[key] = "***" if any(s in key.lower() for s in _SECRET_KEYS) else redact(v, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [redact(v, depth + 1) for v in value[:100]]
    if isinstance(value, str):
        return _URL.sub("<link>", clean(value, MAX_TEXT))
    if value is None or isinstance(value, bool | int | float):
        return value
    return clean(str(value), MAX_TEXT)


@dataclass(frozen=True)
class Attribution:
    """Who asked for a write and how it was approved, as the face and the tool know it."""

    actor: str = "local"
    """The local user, the gateway account, or an OAuth grant: a string the faces choose."""
    confirmed: str = "policy"


@dataclass(frozen=True)
class Entry:
    id: int
    started_at: str
    finished_at: str | None
    actor: str
    tool: str
    arguments: dict[str, Any]
    confirmed: str
    customer_id: str | None
    fingerprint: str | None
    batch_id: str | None
    batch_row: int | None
    outcome: str
    invoice_id: str | None
    invoice_number: str | None
    total: str | None
    detail: str | None
    duration_ms: int | None

    def record(self) -> dict[str, Any]:
        """One exported record: intent and outcome merged."""
        return {
            "id": self.id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "actor": self.actor,
            "tool": self.tool,
            "confirmed": self.confirmed,
            "outcome": self.outcome,
            "customer_id": self.customer_id,
            "invoice_id": self.invoice_id,
            "invoice_number": self.invoice_number,
            "total": self.total,
            "batch_id": self.batch_id,
            "batch_row": self.batch_row,
            "duration_ms": self.duration_ms,
            "detail": self.detail,
            "arguments": self.arguments,
        }


_COLUMNS: Final = (
    "id, started_at, finished_at, actor, tool, arguments, confirmed, customer_id, fingerprint, batch_id, "
    "batch_row, outcome, invoice_id, invoice_number, total, detail, duration_ms"
)


def _entry(row: Row) -> Entry:
    try:
        args = json.loads(row[5])
    except (TypeError, ValueError):
        args = {}
    return Entry(
        id=int(row[0]),
        started_at=row[1],
        finished_at=row[2],
        actor=row[3],
        tool=row[4],
        arguments=args if isinstance(args, dict) else {},
        confirmed=row[6],
        customer_id=row[7],
        fingerprint=row[8],
        batch_id=row[9],
        batch_row=None if row[10] is None else int(row[10]),
        outcome=row[11],
        invoice_id=row[12],
        invoice_number=row[13],
        total=row[14],
        detail=row[15],
        duration_ms=None if row[16] is None else int(row[16]),
    )


@dataclass(frozen=True)
class Filter:
    since: datetime | None = None
    until: datetime | None = None
    tool: str | None = None
    customer_id: str | None = None
    outcome: str | None = None
    batch_id: str | None = None


class Journal:
    """The journal of one account. Methods are coroutines; the store is opened on first use."""

    def __init__(
        self,
        store: LazyStore,
        scope: str,
        *,
        clock: Now,
        monotonic: Callable[[], float] = time.monotonic,
        retention_days: int | None = None,
    ) -> None:
        self.store = store
        self.scope = scope
        self._clock = clock
        self._mono = monotonic
        self.retention_days = retention_days
        self._started: dict[int, float] = {}
        self._pruned = False

    async def _tx(self, fn: Callable[[Tx], Any], *, write: bool = True) -> Any:
        store = await self.store.get(JOURNAL_SCHEMA)
        return await store.transaction(fn, write=write)

    async def intent(
        self,
        who: Attribution,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        customer_id: str | None = None,
        fingerprint: str | None = None,
        batch_id: str | None = None,
        batch_row: int | None = None,
        total: str | None = None,
        invoice_id: str | None = None,
        invoice_number: str | None = None,
    ) -> int:
        """Record that a write is about to be sent; returns the entry id for :meth:`outcome`."""
        if not self._pruned:
            self._pruned = True
            await self.prune()
        params = (
            self.scope,
            iso(self._clock()),
            clean(who.actor, 200) or "unknown",
            tool,
            json.dumps(redact(arguments), separators=(",", ":"), sort_keys=True),
            who.confirmed,
            customer_id,
            fingerprint,
            batch_id,
            batch_row,
            total,
            invoice_id,
            invoice_number,
        )

        def insert(tx: Tx) -> int:
            row = tx.fetchone(
                "INSERT INTO journal_entries (scope, started_at, actor, tool, arguments, confirmed, customer_id, "
                "fingerprint, batch_id, batch_row, outcome, total, invoice_id, invoice_number) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?) RETURNING id",
                params,
            )
            assert row is not None
            return int(row[0])

        entry_id: int = await self._tx(insert)
        self._started[entry_id] = self._mono()
        return entry_id

    async def outcome(
        self,
        entry_id: int,
        outcome: Outcome,
        *,
        invoice_id: str | None = None,
        invoice_number: str | None = None,
        detail: str | None = None,
    ) -> None:
        started = self._started.pop(entry_id, None)
        ms = None if started is None else round((self._mono() - started) * 1000)
        params = (
            iso(self._clock()),
            outcome,
            clean(invoice_id, 64) or None,
            clean(invoice_number, 64) or None,
            clean(detail, 300) or None,
            ms,
            entry_id,
            self.scope,
        )
        await self._tx(
            lambda tx: tx.execute(
                "UPDATE journal_entries SET finished_at = ?, outcome = ?, invoice_id = COALESCE(?, invoice_id), "
                "invoice_number = COALESCE(?, invoice_number), detail = ?, duration_ms = ? "
                "WHERE id = ? AND scope = ?",
                params,
            )
        )

    async def by_fingerprint(self, fingerprint: str, since: datetime) -> Entry | None:
        """The latest create with this fingerprint since ``since`` that did or may have gone through."""
        rows = await self._tx(
            lambda tx: tx.fetchall(
                f"SELECT {_COLUMNS} FROM journal_entries WHERE scope = ? AND fingerprint = ? AND started_at >= ? "
                "AND outcome IN ('pending', 'created', 'possibly') ORDER BY id DESC LIMIT 1",
                (self.scope, fingerprint, iso(since)),
            ),
            write=False,
        )
        return _entry(rows[0]) if rows else None

    async def batch(self, batch_id: str) -> dict[int, Entry]:
        """The latest entry of every row of a batch."""
        rows = await self._tx(
            lambda tx: tx.fetchall(
                f"SELECT {_COLUMNS} FROM journal_entries WHERE scope = ? AND batch_id = ? ORDER BY id",
                (self.scope, batch_id),
            ),
            write=False,
        )
        latest: dict[int, Entry] = {}
        for row in rows:
            e = _entry(row)
            if e.batch_row is not None:
                latest[e.batch_row] = e
        return latest

    async def entries(self, where: Filter, *, limit: int = 50, before_id: int | None = None) -> list[Entry]:
        """Newest first; ``before_id`` pages on."""
        sql = [f"SELECT {_COLUMNS} FROM journal_entries WHERE scope = ?"]
        params: list[Any] = [self.scope]
        for column, op, value in (
            ("started_at", ">=", iso(where.since) if where.since else None),
            ("started_at", "<", iso(where.until) if where.until else None),
            ("tool", "=", where.tool),
            ("customer_id", "=", where.customer_id),
            ("outcome", "=", where.outcome),
            ("batch_id", "=", where.batch_id),
            ("id", "<", before_id),
        ):
            if value is not None:
                sql.append(f"AND {column} {op} ?")
                params.append(value)
        sql.append("ORDER BY id DESC LIMIT ?")
        params.append(limit)
        rows = await self._tx(lambda tx: tx.fetchall(" ".join(sql), params), write=False)
        return [_entry(r) for r in rows]

    async def prune(self) -> int:
        """Drop entries older than the retention setting (none when unset)."""
        if not self.retention_days:
            return 0
        cutoff = iso(self._clock() - timedelta(days=self.retention_days))
        count: int = await self._tx(
            lambda tx: tx.execute(
                "DELETE FROM journal_entries WHERE scope = ? AND started_at < ? AND outcome <> 'pending'",
                (self.scope, cutoff),
            )
        )
        return count


def all_entries(store_rows: Sequence[Row]) -> list[Entry]:
    return [_entry(r) for r in store_rows]


ALL_COLUMNS: Final = _COLUMNS
