"""The server's one clock: the API's time, as the `Date` header of its responses tells it.

"Today", days past due, the duplicate guard's windows and the times the server tells a model to
search from (`created_at_start=…`) are all judged on the calendar that stamps the API's own
`created_at`, so a server whose host clock drifts (or a test that fixes the API's day) never
mixes two clocks. Between responses the local clock carries the last offset seen; before the
first response the local clock stands alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Final

Now = Callable[[], datetime]
"""A source of aware UTC datetimes."""

MAX_DATE_HEADER: Final = 64
"""Longer `Date` values are not read (an RFC 9110 date is 29 characters)."""
_EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)


def system_now() -> datetime:
    return datetime.now(UTC)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP `Date` header as an aware UTC datetime; None when absent, unreadable or absurd."""
    if not value or len(value) > MAX_DATE_HEADER:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when if _EARLIEST <= when < _LATEST else None


class ApiClock:
    """Local time corrected by the API's declared time.

    A `Date` header has one-second resolution and is truncated, so the corrected time may lag
    the API's by up to a second: times handed out as search starts err early, never late.
    """

    def __init__(self, local: Now = system_now) -> None:
        self._local = local
        self._offset: timedelta | None = None

    @property
    def synced(self) -> bool:
        """Whether a response has told this clock the API's time."""
        return self._offset is not None

    def observe(self, header: str | None) -> None:
        api = parse_http_date(header)
        if api is not None:
            self._offset = api - self._local()

    def now(self) -> datetime:
        local = self._local()
        return local + self._offset if self._offset is not None else local

    def today(self) -> date:
        """The API's UTC date."""
        return self.now().date()
