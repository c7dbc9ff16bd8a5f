"""create_invoices end to end: an MCP session against the sandbox over real HTTP, counting the
POSTs the sandbox received, the confirmations asked and the journal rows written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ElicitResult

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server
from invoice_mcp.service.batches import BATCH_SCHEMA, Lease
from invoice_mcp.service.journal import JOURNAL_SCHEMA
from invoice_mcp.state import open_store

from ..conftest import settings_for, text_of
from .test_views import counting

pytestmark = pytest.mark.anyio


def posts(sb: Sandbox) -> int:
    return len([r for r in sb.requests("POST", "/invoices") if r.path == "/invoices"])


def batch_rows(sb: Sandbox, n: int = 50, tag: str = "Run") -> list[dict[str, Any]]:
    customers = sb.customers()
    return [
        {
            "customer": customers[i % len(customers)]["name"] if i % 2 else customers[i % len(customers)]["id"],
            "due_date": "2027-01-15",
            "line_items": [{"description": f"{tag} seat {i}", "amount": 10 + i, "quantity": 2}],
        }
        for i in range(n)
    ]


def journal_rows(url: str) -> list[tuple[Any, ...]]:
    store = open_store(url, schemas=[JOURNAL_SCHEMA])
    try:
        return store.transaction_sync(
            lambda tx: tx.fetchall("SELECT tool, outcome, batch_id, batch_row, confirmed FROM journal_entries")
        )
    finally:
        store.close()


@pytest.mark.slow
async def test_fifty_invoices_one_confirmation(sandbox: Sandbox, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    asked: list[str] = []
    progress: list[tuple[float, float | None]] = []

    async def approve(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"ok": True})

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total))

    rows = batch_rows(sandbox)
    async with Client(build_server(settings_for(sandbox, INVOICE_MCP_STATE=url)), elicitation_callback=approve) as c:
        sandbox.clear_log()
        res = await c.call_tool("create_invoices", {"rows": rows}, progress_callback=on_progress)
    assert not res.is_error, text_of(res)
    assert len(asked) == 1 and "50 LIVE" in asked[0] and "total" in asked[0]
    assert posts(sandbox) == 50
    # Customer lookups and the duplicate look are one request each for the whole batch: the run costs
    # about what its 50 POSTs cost at the API's pace.
    others = [r for r in sandbox.requests() if not (r.method == "POST" and r.path == "/invoices")]
    assert len([r for r in others if r.path != "/oauth/token"]) <= 4, [r.path for r in others]
    assert len(progress) == 50 and progress[-1] == (50, 50)
    sc = res.structured_content
    assert sc["counts"]["created"] == 50 and sc["counts"]["confirmed"] == "user" and "failed" not in sc["counts"]
    assert len({row[2] for row in sc["rows"]}) == 50
    created = [ln for ln in text_of(res).splitlines() if " created INV" in ln or " created " in ln]
    assert len(created) == 50
    got = journal_rows(url)
    assert len(got) == 50 and {g[:3] for g in got} == {("create_invoices", "created", sc["batch_id"])}
    assert sorted(g[3] for g in got) == list(range(50))
    assert counting.tok(text_of(res)) < 2500
    assert counting.tok(json.dumps(sc, separators=(",", ":"))) < 2500

    # The same batch again: nothing is sent, every row is reported as done by the earlier run.
    sandbox.clear_log()
    async with Client(build_server(settings_for(sandbox, INVOICE_MCP_STATE=url, INVOICE_MCP_CONFIRM="never"))) as c:
        again = await c.call_tool("create_invoices", {"rows": rows})
    assert posts(sandbox) == 0
    assert again.structured_content["counts"]["created"] == 50
    assert all(r[5] for r in again.structured_content["rows"]), "all done by the earlier run"


@pytest.mark.parametrize(
    ("row", "change", "named"),
    [
        (37, {"customer": "No Such Customer Ltd"}, "rows[37].customer"),
        (12, {"line_items": [{"description": "x", "amount": -5, "quantity": 1}]}, "rows.12.line_items.0.amount"),
        (44, {"due_date": "2027-02-30"}, "rows.44.due_date"),
    ],
)
async def test_an_invalid_row_sends_nothing(sandbox: Sandbox, row: int, change: dict[str, Any], named: str) -> None:
    rows = batch_rows(sandbox)
    rows[row].update(change)
    async with Client(build_server(settings_for(sandbox, INVOICE_MCP_CONFIRM="never"))) as c:
        res = await c.call_tool("create_invoices", {"rows": rows})
    assert res.is_error and named in text_of(res), text_of(res)
    assert "Traceback" not in text_of(res)
    assert posts(sandbox) == 0


async def test_preview_flags_possible_duplicates(sandbox: Sandbox) -> None:
    rows = batch_rows(sandbox, 4, tag="Preview")
    rows.append(dict(rows[1]))
    async with Client(build_server(settings_for(sandbox, INVOICE_MCP_CONFIRM="never"))) as c:
        one = {k: v for k, v in rows[0].items() if k != "customer"} | {"customer_id": sandbox.customers()[0]["id"]}
        assert not (await c.call_tool("create_invoice", one)).is_error
        sandbox.clear_log()
        res = await c.call_tool("create_invoices", {"rows": rows, "dry_run": True})
    assert posts(sandbox) == 0
    sc = res.structured_content
    assert sc["outcome"] == "preview" and sc["counts"]["possible_duplicates"] == 2 and sc["counts"]["rows"] == 5
    flagged = {r[0]: r[4] for r in sc["rows"] if r[4]}
    assert set(flagged) == {0, 4} and flagged[4] == "same as rows[1]" and flagged[0].startswith("like INV")
    assert "POSSIBLE DUPLICATE" in text_of(res) and "Per customer" in text_of(res)
    assert sc["counts"]["total"] == float(sum((10 + i) * 2 for i in range(4)) + 22)


async def test_an_ambiguous_row_is_looked_up_not_resent(sandbox: Sandbox, tmp_path: Path) -> None:
    """The API created row 3 but its answer was lost: the row is reported as possibly created; the
    re-issue finds it on the API and sends only the rest."""
    url = f"sqlite:///{tmp_path}/state.db"
    rows = batch_rows(sandbox, 6, tag="Lost")
    settings = settings_for(sandbox, INVOICE_MCP_STATE=url, INVOICE_MCP_CONFIRM="never")
    async with Client(build_server(settings)) as c:
        # the first three go through, the fourth is applied but its response never arrives
        sandbox.faults.drop_next(1, method="POST", path="/invoices", after_processing=True)
        first = await c.call_tool("create_invoices", {"rows": rows[3:4]})
        assert first.structured_content["rows"][0][6] is True  # may_exist
        sandbox.clear_log()
        whole = await c.call_tool(
            "create_invoices", {"rows": rows[3:4], "batch_id": first.structured_content["batch_id"]}
        )
    assert posts(sandbox) == 0
    assert whole.structured_content["counts"]["created"] == 1
    assert len([i for i in sandbox.invoices() if i["line_items"][0]["description"] == "Lost seat 3"]) == 1


async def test_the_user_declines(sandbox: Sandbox) -> None:
    async def decline(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="decline")

    async with Client(build_server(settings_for(sandbox)), elicitation_callback=decline) as c:
        res = await c.call_tool("create_invoices", {"rows": batch_rows(sandbox, 3)})
    assert res.structured_content["outcome"] == "not_sent" and posts(sandbox) == 0


async def test_a_batch_id_cannot_be_reused_for_other_rows(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = settings_for(sandbox, INVOICE_MCP_STATE=f"sqlite:///{tmp_path}/s.db", INVOICE_MCP_CONFIRM="never")
    async with Client(build_server(settings)) as c:
        assert not (await c.call_tool("create_invoices", {"rows": batch_rows(sandbox, 2), "batch_id": "x1"})).is_error
        sandbox.clear_log()
        res = await c.call_tool("create_invoices", {"rows": batch_rows(sandbox, 3), "batch_id": "x1"})
    assert res.is_error and "already used" in text_of(res) and posts(sandbox) == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


async def test_a_lock_left_by_another_host_delays_at_most_the_lease(state_url: str, sandbox: Sandbox) -> None:
    """A holder that stopped renewing (killed elsewhere) blocks a re-issue for at most 30 s of the
    injected clock; a live holder that renews keeps it."""
    from invoice_mcp.server.state import AppState

    app = AppState(settings_for(sandbox, INVOICE_MCP_STATE=state_url))
    svc = app.service
    clock = FakeClock()
    dead = Lease(svc, "scope", "b1", clock=clock, sleep=clock.sleep)
    dead._host = "elsewhere"  # not this host: its process cannot be checked, only its lease
    await dead.acquire("create", "d", 3)
    clock.now += 5  # it worked for 5 s, then died
    second = Lease(svc, "scope", "b1", clock=clock, sleep=clock.sleep)
    started = clock.now
    await second.acquire("create", "d", 3)
    assert 0 < clock.now - started <= 30
    clock.slept.clear()
    third = Lease(svc, "scope", "b1", clock=clock, sleep=clock.sleep)
    from invoice_mcp.service.batches import BatchBusy

    with pytest.raises(BatchBusy, match="another process"):
        await third.acquire("create", "d", 3, wait_s=10)
    await second.release()
    await third.acquire("create", "d", 3, wait_s=0)
    await app.aclose()


async def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_at_once(tmp_path: Path, sandbox: Sandbox) -> None:
    from invoice_mcp.server.state import AppState

    app = AppState(settings_for(sandbox, INVOICE_MCP_STATE=f"sqlite:///{tmp_path}/s.db"))
    clock = FakeClock()
    dead = Lease(app.service, "scope", "b1", clock=clock, sleep=clock.sleep)
    dead._pid = 2**22 + 12345  # no such process
    await dead.acquire("create", "d", 3)
    await Lease(app.service, "scope", "b1", clock=clock, sleep=clock.sleep).acquire("create", "d", 3)
    assert clock.slept == []
    store = await app.state.get(BATCH_SCHEMA)
    assert store.transaction_sync(lambda tx: tx.fetchone("SELECT COUNT(*) FROM batch_runs")) == (1,)
    await app.aclose()


async def test_rows_skipped_as_duplicates_and_failed_rows(sandbox: Sandbox, tmp_path: Path) -> None:
    """A row identical to an invoice made minutes ago is skipped with its number; a row the API
    refuses fails with the reason and is known not to exist; the other rows go through."""
    settings = settings_for(sandbox, INVOICE_MCP_STATE=f"sqlite:///{tmp_path}/s.db", INVOICE_MCP_CONFIRM="never")
    rows = batch_rows(sandbox, 3, tag="Mixed")
    async with Client(build_server(settings)) as c:
        one = {k: v for k, v in rows[0].items() if k != "customer"} | {"customer_id": sandbox.customers()[0]["id"]}
        existing = (await c.call_tool("create_invoice", one)).structured_content["invoice_number"]
        sandbox.clear_log()
        sandbox.faults.fail_next(1, 422, method="POST", path="/invoices")
        res = await c.call_tool("create_invoices", {"rows": rows})
    status = {r[0]: (r[1], r[2], r[6]) for r in res.structured_content["rows"]}
    assert status[0] == ("duplicate", existing, False)
    assert status[1][0] == "failed" and status[1][2] is False
    assert status[2][0] == "created"
    assert "retries only the rows not created" in text_of(res)
    assert posts(sandbox) == 2
