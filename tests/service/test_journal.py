"""The write journal on both engines: intent before the POST, outcome after, who and how confirmed,
arguments redacted, the duplicate guard's durable memory across restarts, retention."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server
from invoice_mcp.service.journal import JOURNAL_SCHEMA, Attribution, Filter, Journal, redact
from invoice_mcp.state import LazyStore, open_store

from ..conftest import settings_for, text_of

pytestmark = pytest.mark.anyio


def args_for(sb: Sandbox, description: str = "Journaled seats") -> dict[str, Any]:
    return {
        "customer_id": sb.customers()[1]["id"],
        "due_date": "2027-01-15",
        "line_items": [{"description": description, "amount": 12.5, "quantity": 4}],
    }


def rows(url: str) -> list[tuple[Any, ...]]:
    store = open_store(url, schemas=[JOURNAL_SCHEMA])
    try:
        return store.transaction_sync(
            lambda tx: tx.fetchall(
                "SELECT tool, actor, confirmed, outcome, invoice_number, arguments, started_at, finished_at, "
                "batch_id FROM journal_entries ORDER BY id"
            )
        )
    finally:
        store.close()


def posts(sb: Sandbox) -> int:
    return len([r for r in sb.requests("POST", "/invoices") if r.path == "/invoices"])


async def test_a_create_is_journaled_with_who_and_how(sandbox: Sandbox, state_url: str) -> None:
    settings = settings_for(sandbox, INVOICE_MCP_STATE=state_url, INVOICE_MCP_CONFIRM="never")
    async with Client(build_server(settings)) as c:
        res = await c.call_tool("create_invoice", args_for(sandbox))
        assert not res.is_error, text_of(res)
        number = res.structured_content["invoice_number"]
    [row] = rows(state_url)
    tool, actor, confirmed, outcome, inv_number, arguments, started, finished, batch = row
    assert (tool, confirmed, outcome, inv_number, batch) == ("create_invoice", "policy", "created", number, None)
    assert actor.startswith("local")
    assert json.loads(arguments)["line_items"] == [{"amount": "12.5", "description": "Journaled seats", "quantity": 4}]
    assert started and finished  # both stamped (on the API clock, which may step back by < 1 s)


async def test_the_journal_remembers_across_a_restart(sandbox: Sandbox, state_url: str) -> None:
    """A new process (fresh in-memory reservations) refuses an identical create from the journal,
    before any look at the API."""
    settings = settings_for(sandbox, INVOICE_MCP_STATE=state_url, INVOICE_MCP_CONFIRM="never")
    async with Client(build_server(settings)) as c:
        first = await c.call_tool("create_invoice", args_for(sandbox))
        number = first.structured_content["invoice_number"]
    sandbox.clear_log()
    async with Client(build_server(settings)) as c:
        again = await c.call_tool("create_invoice", args_for(sandbox))
    assert again.is_error and number in text_of(again), text_of(again)
    assert posts(sandbox) == 0
    assert not [r for r in sandbox.requests("GET", "/invoices") if r.path == "/invoices"], "refused from the journal"


async def test_an_interrupted_create_blocks_a_blind_resend(sandbox: Sandbox, tmp_path: Path) -> None:
    """A process killed with its POST in flight leaves an intent without outcome: the next identical
    create is refused as 'may have been created' even though the API shows nothing."""
    url = f"sqlite:///{tmp_path}/state.db"
    settings = settings_for(sandbox, INVOICE_MCP_STATE=url, INVOICE_MCP_CONFIRM="never")
    from invoice_mcp.server.state import AppState
    from invoice_mcp.service.guard import fingerprint

    killed = AppState(settings)  # the process that died: its journal, on the API's clock
    await killed.service.client.sync_clock()
    journal = killed.service.journal
    assert journal is not None
    today = sandbox.today().isoformat()
    fp = fingerprint(sandbox.customers()[1]["id"], "USD", "2027-01-15", [("Journaled seats", 12.5, 4)], today=today)
    await journal.intent(Attribution("local:x", "policy"), "create_invoice", {}, fingerprint=fp)
    await killed.aclose()
    async with Client(build_server(settings)) as c:
        res = await c.call_tool("create_invoice", args_for(sandbox))
    assert res.is_error and "may" in text_of(res).lower(), text_of(res)
    assert posts(sandbox) == 0


async def test_archive_and_restore_are_journaled(sandbox: Sandbox, state_url: str) -> None:
    settings = settings_for(sandbox, INVOICE_MCP_STATE=state_url, INVOICE_MCP_CONFIRM="never")
    inv = next(i for i in sandbox.invoices(include_archived=False) if i["status"] != "archived")
    async with Client(build_server(settings)) as c:
        assert not (await c.call_tool("archive_invoice", {"invoice": inv["invoice_number"]})).is_error
        assert not (await c.call_tool("restore_invoice", {"invoice": inv["id"]})).is_error
    got = rows(state_url)
    assert [(r[0], r[3]) for r in got] == [("archive_invoice", "archived"), ("restore_invoice", "restored")]
    assert got[0][4] == inv["invoice_number"]


async def test_no_journal_no_write(sandbox: Sandbox, tmp_path: Path) -> None:
    """A journal that cannot be written means nothing is sent."""
    (tmp_path / "file").write_text("not a folder")
    settings = settings_for(sandbox, INVOICE_MCP_STATE=f"sqlite:///{tmp_path}/file/state.db")
    async with Client(build_server(settings)) as c:
        res = await c.call_tool("create_invoice", args_for(sandbox, "Never sent"))
    assert res.is_error and "journal" in text_of(res) and "nothing was sent" in text_of(res), text_of(res)
    assert posts(sandbox) == 0


def test_redaction() -> None:
    got = redact(
        {
            "client_secret": "s3cret",
            "nested": {"access_token": "tok-123", "note": "see https://pay.example/p/abc"},
            "link": "https://x",
            "list": ["https://pay.example/abc", 3, None, True],
            "obj": Path("/x"),
        }
    )
    assert got["client_secret"] == "***" and got["nested"]["access_token"] == "***" and got["link"] == "***"
    assert got["list"] == ["<link>", 3, None, True] and got["obj"] == "/x"
    assert got["nested"]["note"] == "see <link>"
    assert "s3cret" not in json.dumps(got) and "tok-123" not in json.dumps(got)
    deep: Any = "x"
    for _ in range(10):
        deep = [deep]
    assert "…" in json.dumps(redact(deep), ensure_ascii=False)


async def test_filters_paging_and_retention(state_url: str) -> None:
    now = [datetime(2026, 11, 25, 12, tzinfo=UTC)]
    lazy = LazyStore(state_url)
    journal = Journal(lazy, "scope-a", clock=lambda: now[0])
    other = Journal(lazy, "scope-b", clock=lambda: now[0])
    who = Attribution("gateway:acct", "user")
    old = await journal.intent(who, "create_invoice", {"customer_id": "c1"}, customer_id="c1")
    await journal.outcome(old, "created", invoice_id="i1", invoice_number="INV-1")
    now[0] += timedelta(days=40)
    for n in range(3):
        e = await journal.intent(who, "archive_invoice", {"invoice": f"i{n}"}, customer_id="c2", batch_id="b1")
        await journal.outcome(e, "archived")
    await other.intent(who, "create_invoice", {})
    assert len(await journal.entries(Filter())) == 4
    assert [e.tool for e in await journal.entries(Filter(customer_id="c1"))] == ["create_invoice"]
    page1 = await journal.entries(Filter(tool="archive_invoice"), limit=2)
    page2 = await journal.entries(Filter(tool="archive_invoice"), limit=2, before_id=page1[-1].id)
    assert len(page1) == 2 and len(page2) == 1
    assert len(await journal.entries(Filter(since=now[0] - timedelta(days=1), outcome="archived"))) == 3
    assert await journal.entries(Filter(until=now[0] - timedelta(days=1))) != []
    assert set((await journal.batch("b1")).keys()) == set()  # rows only for batch rows with a number
    kept = Journal(lazy, "scope-a", clock=lambda: now[0], retention_days=30)
    assert await kept.prune() == 1
    assert await Journal(lazy, "scope-a", clock=lambda: now[0]).prune() == 0
    record = (await journal.entries(Filter()))[0].record()
    assert record["actor"] == "gateway:acct" and record["outcome"] == "archived"
    await lazy.aclose()
