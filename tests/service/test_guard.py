"""The guard's parts: the normalised fingerprint and the two reservation stores."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import anyio
import pytest

from invoice_mcp.api.models import Invoice, LineItem, Page
from invoice_mcp.api.shared_state import RedisReservations
from invoice_mcp.clock import ApiClock
from invoice_mcp.service.errors import DuplicateInvoice
from invoice_mcp.service.guard import LocalReservations, Reservations, fingerprint, invoice_fingerprint
from invoice_mcp.service.writes import InvoiceToCreate, LineToCreate, Writer

pytestmark = pytest.mark.anyio
TODAY = "2026-11-25"
LINES: list[tuple[str, Decimal | float | str, int]] = [("Seats", Decimal("10"), 3), ("Setup fee", Decimal("99.5"), 1)]


Line = tuple[str, Decimal | float | str, int]


def fp(lines: Sequence[Line] = LINES, due: str | None = "2026-12-01", **kw: str) -> str:
    return fingerprint(kw.get("customer", "cus_1"), kw.get("currency", "USD"), due, lines, today=TODAY)


def test_fingerprint_ignores_what_does_not_change_the_invoice() -> None:
    base = fp()
    assert fp(list(reversed(LINES))) == base
    assert fp([("  sEATS\t", 10.0, 3), ("setup  FEE", "99.50", 1)]) == base
    assert fp(currency="usd") == base
    assert fp(due=None) == fp(due=TODAY)


@pytest.mark.parametrize(
    "other",
    [
        {"lines": [("Seats", Decimal("10.01"), 3), LINES[1]]},
        {"lines": [("Seats", Decimal("10"), 4), LINES[1]]},
        {"lines": [LINES[0]]},
        {"lines": [*LINES, LINES[0]]},
        {"due": "2026-12-02"},
        {"customer": "cus_2"},
    ],
)
def test_fingerprint_sees_real_differences(other: dict[str, object]) -> None:
    assert fp(**other) != fp()  # type: ignore[arg-type]


def test_an_api_invoice_fingerprints_like_its_draft() -> None:
    inv = Invoice(
        customer_id="cus_1",
        currency="USD",
        due_date="2026-12-01T00:00:00Z",
        created_at="2026-11-25T10:00:00Z",
        line_items=[LineItem(description=d, amount=Decimal(str(a)), quantity=q) for d, a, q in reversed(LINES)],
    )
    assert invoice_fingerprint(inv, today=TODAY) == fp()
    assert invoice_fingerprint(Invoice(), today=TODAY) is None


async def test_local_claims_expire_on_their_clock() -> None:
    now = [0.0]
    store = LocalReservations(clock=lambda: now[0])
    assert await store.claim("k", "a", 10) is None
    assert await store.claim("k", "b", 10) == "a"
    await store.release("k", "b")  # not the holder: no effect
    assert await store.get("k") == "a"
    now[0] = 10.0
    assert await store.claim("k", "b", 10) is None
    await store.release("k", "b")
    assert await store.get("k") is None


def test_local_store_is_bounded() -> None:
    store = LocalReservations(clock=lambda: 0.0)

    async def fill() -> None:
        for i in range(LocalReservations.MAX_KEYS + 50):
            await store.put(f"k{i}", "v", 60)

    anyio.run(fill)
    assert len(store._items) <= LocalReservations.MAX_KEYS


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_exactly_one_of_many_concurrent_claims_wins(kind: str, redis_url: str) -> None:
    store: Reservations = LocalReservations() if kind == "local" else RedisReservations(redis_url)
    wins: list[int] = []

    async def claim(i: int) -> None:
        if await store.claim("same-fingerprint", f"owner-{i}", 5) is None:
            wins.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(claim, i)
    assert len(wins) == 1
    assert await store.get("same-fingerprint") == f"owner-{wins[0]}"
    await store.release("same-fingerprint", f"owner-{wins[0]}")
    assert await store.get("same-fingerprint") is None
    if isinstance(store, RedisReservations):
        await store.aclose()


class _HangingAPI:
    """list_invoices finds nothing; create_invoice is sent and never answers."""

    def __init__(self) -> None:
        self.sent = anyio.Event()
        self.posts = 0
        self.clock = ApiClock(local=lambda: datetime(2026, 11, 25, 12, tzinfo=UTC))

    async def sync_clock(self) -> None:
        pass

    async def list_invoices(self, **_: object) -> Page[Invoice]:
        return Page[Invoice]()

    async def create_invoice(self, _: object) -> Invoice:
        self.posts += 1
        self.sent.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def test_a_create_cancelled_in_flight_counts_as_possibly_created() -> None:
    api = _HangingAPI()
    writer = Writer(cast(Any, api), LocalReservations())
    draft = InvoiceToCreate("cus_1", (LineToCreate("Seats", Decimal("10"), 3),))
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.create, draft)
        await api.sent.wait()
        tg.cancel_scope.cancel()  # the client gave up while the POST was upstream
    dup = await writer.recent_duplicate(draft)
    assert dup is not None and dup.state == "possibly"
    with pytest.raises(DuplicateInvoice) as refused:
        await writer.create(draft)
    assert refused.value.state == "possibly" and api.posts == 1


class _HistoryAPI:
    """The customer's invoices, newest first, honouring created_at_start and cursors (pages of `limit`)."""

    def __init__(self, invoices: list[Invoice]) -> None:
        self.invoices = sorted(invoices, key=lambda i: i.created_at or "", reverse=True)
        self.posts = 0
        self.pages = 0
        self.clock = ApiClock(local=lambda: NOW)

    async def sync_clock(self) -> None:
        pass

    async def list_invoices(
        self, *, limit: int, customer_id: str, created_at_start: str, after: str | None = None, **_: object
    ) -> Page[Invoice]:
        self.pages += 1
        rows = [i for i in self.invoices if i.customer_id == customer_id and (i.created_at or "") >= created_at_start]
        start = int(after or 0)
        more = start + limit < len(rows)
        return Page[Invoice](data=rows[start : start + limit], has_next_page=more, end_cursor=str(start + limit))

    async def create_invoice(self, _: object) -> Invoice:
        self.posts += 1
        return Invoice(id=f"inv_new_{self.posts}", customer_id="cus_1")


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DRAFT = InvoiceToCreate("cus_1", (LineToCreate("Seats", Decimal("10"), 3),), due_date="2026-12-01")


def _on_api(minutes_ago: float, *, same: bool = True, k: int = 0) -> Invoice:
    created = (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = LineItem(description="Seats" if same else f"Other {k}", amount=Decimal("10"), quantity=3)
    return Invoice(id=f"inv_{k}", invoice_number=f"INV-{k}", customer_id="cus_1", currency="USD",
                   due_date="2026-12-01", created_at=created, line_items=[line])  # fmt: skip


@pytest.mark.parametrize("api_behind_min", [0, 5, 15, 25])
async def test_the_api_check_tolerates_the_apis_clock_being_behind(api_behind_min: int) -> None:
    """The identical invoice was created 2 minutes ago by another server, stamped by an API
    whose clock is `api_behind_min` minutes behind this server's: still found, no POST."""
    api = _HistoryAPI([_on_api(2 + api_behind_min)])
    writer = Writer(cast(Any, api), LocalReservations(), clock=lambda: NOW)
    with pytest.raises(DuplicateInvoice) as refused:
        await writer.create(DRAFT)
    assert refused.value.source == "api" and api.posts == 0


async def test_the_api_check_pages_as_far_as_its_window_needs() -> None:
    """350 newer invoices of the same customer in the window, then the identical one."""
    newer = [_on_api(k / 100, same=False, k=k + 1) for k in range(350)]
    api = _HistoryAPI([*newer, _on_api(4, k=999)])
    writer = Writer(cast(Any, api), LocalReservations(), clock=lambda: NOW)
    with pytest.raises(DuplicateInvoice) as refused:
        await writer.create(DRAFT)
    assert refused.value.invoice_id == "inv_999" and api.posts == 0 and api.pages == 4
