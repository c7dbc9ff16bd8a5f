"""Assistant workflows: summaries, customer names, confirmations, dry runs, duplicates."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from mcp import Client
from mcp.types import ElicitResult

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server
from invoice_mcp.text import usd

from .conftest import settings_for, text_of

pytestmark = pytest.mark.anyio
SETTLED = {"paid", "archived", "draft"}


def oracle(sb: Sandbox, as_of: date, **where: str) -> dict[str, Any]:
    rows = [
        i
        for i in sb.invoices(include_archived=where.get("status") == "archived")
        if (i["status"] != "archived" or where.get("status") == "archived")
        and all(i.get(k) == v for k, v in where.items())
    ]
    by_status: dict[str, list[Decimal]] = {}
    aging = {k: Decimal("0") for k in ("current", "1-30", "31-60", "61-90", "90+")}
    for i in rows:
        amount = Decimal(str(i["total"]))
        by_status.setdefault(i["status"], []).append(amount)
        if i["status"] not in SETTLED:
            late = (as_of - date.fromisoformat(i["due_date"][:10])).days
            key = (
                "current"
                if late <= 0
                else "1-30"
                if late <= 30
                else "31-60"
                if late <= 60
                else "61-90"
                if late <= 90
                else "90+"
            )
            aging[key] += amount
    return {
        "count": len(rows),
        "total": sum((Decimal(str(i["total"])) for i in rows), Decimal("0")),
        "by_status": {k: {"count": len(v), "total": sum(v, Decimal("0"))} for k, v in by_status.items()},
        "aging": aging,
    }


def exact(number: float) -> Decimal:
    """A JSON number from the server as the decimal it was written as (shortest repr round-trips)."""
    return Decimal(repr(number))


@pytest.mark.parametrize("where", [{}, {"status": "overdue"}, {"status": "paid"}, "customer"])
@pytest.mark.slow
async def test_summary_equals_sums_from_sandbox_data(mcp_client: Client, sandbox: Sandbox, where: object) -> None:
    filters: dict[str, str] = {}
    if where == "customer":
        filters["customer_id"] = sandbox.customers()[1]["id"]
    else:
        assert isinstance(where, dict)
        filters.update(where)
    as_of = date(2026, 10, 1)
    r = await mcp_client.call_tool("summarize_invoices", {**filters, "as_of": as_of.isoformat()})
    assert not r.is_error, text_of(r)
    got = r.structured_content
    want = oracle(sandbox, as_of, **filters)
    assert got["count"] == want["count"] and exact(got["total"]) == want["total"]
    assert {k: (v["count"], exact(v["total"])) for k, v in got["by_status"].items()} == {
        k: (v["count"], v["total"]) for k, v in want["by_status"].items()
    }
    assert {k: exact(b["total"]) for k, b in got["aging"].items()} == want["aging"]
    assert usd(want["total"]) in text_of(r)  # the text view shows the same exact figure
    assert got["truncated"] is False and got["as_of"] == "2026-10-01"


async def test_summary_by_customer_name_and_top_debtors(mcp_client: Client, sandbox: Sandbox) -> None:
    cust = sandbox.customers()[2]
    r = await mcp_client.call_tool("summarize_invoices", {"customer": cust["name"]})
    assert not r.is_error, text_of(r)
    assert r.structured_content["customer"] == cust["name"]
    assert r.structured_content["count"] == len(
        [i for i in sandbox.invoices(include_archived=False) if i["customer_id"] == cust["id"]]
    )
    whole = (await mcp_client.call_tool("summarize_invoices", {"top": 3})).structured_content
    top = whole["by_customer"]
    assert len(top) == 3 and all(t["customer"] for t in top)
    assert [t["balance"] for t in top] == sorted((t["balance"] for t in top), reverse=True)


async def test_summary_truncation_is_explicit(mcp_client: Client) -> None:
    r = await mcp_client.call_tool("summarize_invoices", {"max_invoices": 150})
    assert r.structured_content["truncated"] is True and r.structured_content["count"] == 150
    assert "TRUNCATED" in text_of(r)


async def test_summary_reports_progress(mcp_client: Client, sandbox: Sandbox) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    r = await mcp_client.call_tool("summarize_invoices", {}, progress_callback=on_progress)
    assert not r.is_error
    pages = len(sandbox.requests(path_prefix="/invoices"))
    assert len(seen) == pages and seen == sorted(seen) and seen[-1] == r.structured_content["count"]


async def test_customer_name_one_several_none(mcp_client: Client, sandbox: Sandbox) -> None:
    names = [c["name"] for c in sandbox.customers()]
    acme = [n for n in names if "acme" in n.lower()]
    assert len(acme) >= 2
    one = await mcp_client.call_tool("list_invoices", {"customer": acme[0].upper(), "limit": 5})
    assert not one.is_error, text_of(one)
    assert {row[1] for row in one.structured_content["rows"]} == {0} and one.structured_content["customers"] == [
        acme[0]
    ]
    several = await mcp_client.call_tool("list_invoices", {"customer": "acme"})
    assert several.is_error
    assert all(n in text_of(several) for n in acme) and "customer_id=" in text_of(several)
    none = await mcp_client.call_tool("summarize_invoices", {"customer": "Zzyzx Holdings"})
    assert none.is_error and "no customer matches" in text_of(none)
    found = await mcp_client.call_tool("find_customers", {"name": "ACME"})
    assert {c["name"] for c in found.structured_content["customers"]} == set(acme)


def create_args(sb: Sandbox, **extra: Any) -> dict[str, Any]:
    return {
        "customer_id": sb.customers()[0]["id"],
        "due_date": "2026-12-01",
        "line_items": [
            {"description": "Managed seats", "amount": 12.5, "quantity": 12},
            {"description": "Onboarding", "amount": 99.99, "quantity": 1},
        ],
        **extra,
    }


async def test_dry_run_previews_and_sends_nothing(mcp_client: Client, sandbox: Sandbox) -> None:
    r = await mcp_client.call_tool("create_invoice", create_args(sandbox, dry_run=True))
    assert not r.is_error and r.structured_content["outcome"] == "preview"
    assert r.structured_content["total"] == 249.99
    assert "$249.99" in text_of(r)
    assert not sandbox.requests(method="POST", path_prefix="/invoices")


@pytest.mark.slow
async def test_duplicate_guard(mcp_client: Client, sandbox: Sandbox) -> None:
    first = await mcp_client.call_tool("create_invoice", create_args(sandbox))
    assert first.structured_content["outcome"] == "created"
    number = first.structured_content["invoice_number"]
    second = await mcp_client.call_tool("create_invoice", create_args(sandbox))
    assert second.is_error and number in text_of(second) and "allow_duplicate" in text_of(second)
    assert len(sandbox.requests(method="POST", path_prefix="/invoices")) == 1
    third = await mcp_client.call_tool("create_invoice", create_args(sandbox, allow_duplicate=True))
    assert third.structured_content["outcome"] == "created"
    assert len(sandbox.requests(method="POST", path_prefix="/invoices")) == 2


def answering(action: str, seen: list[str]) -> Any:
    async def cb(context: Any, params: Any) -> ElicitResult:
        seen.append(params.message)
        if action == "accept":
            return ElicitResult(action="accept", content={"ok": True})
        return ElicitResult(action=action)  # type: ignore[arg-type]

    return cb


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("action", ["accept", "decline", "cancel"])
async def test_confirmation_of_create_and_archive(sandbox: Sandbox, action: str, mode: str) -> None:
    seen: list[str] = []
    server = build_server(settings_for(sandbox))
    async with Client(server, elicitation_callback=answering(action, seen), mode=mode) as c:
        created = await c.call_tool("create_invoice", create_args(sandbox))
        target = next(i for i in sandbox.invoices(include_archived=False) if i["status"] == "open")
        archived = await c.call_tool("archive_invoice", {"invoice": target["invoice_number"]})
    assert len(seen) == 2
    name = sandbox.customers()[0]["name"]
    assert name in seen[0] and "$249.99" in seen[0] and "2026-12-01" in seen[0] and "Managed seats" in seen[0]
    assert target["invoice_number"] in seen[1] and "Archive" in seen[1]
    posts = sandbox.requests(method="POST", path_prefix="/invoices")
    deletes = sandbox.requests(method="DELETE")
    if action == "accept":
        assert created.structured_content["outcome"] == "created" and len(posts) == 1
        assert archived.structured_content["outcome"] == "archived" and len(deletes) == 1
    else:
        assert created.structured_content["outcome"] == "not_created" and not posts
        assert archived.structured_content["outcome"] == "not_archived" and not deletes
        assert "did not confirm" in text_of(created)


@pytest.mark.parametrize("policy", ["auto", "always", "never"])
async def test_policy_when_client_cannot_confirm(sandbox: Sandbox, policy: str) -> None:
    server = build_server(settings_for(sandbox, INVOICE_MCP_CONFIRM=policy))
    async with Client(server) as c:  # no elicitation callback → no capability
        created = await c.call_tool("create_invoice", create_args(sandbox))
        target = next(i for i in sandbox.invoices(include_archived=False) if i["status"] == "open")
        archived = await c.call_tool("archive_invoice", {"invoice": target["id"]})
    posts = sandbox.requests(method="POST", path_prefix="/invoices")
    if policy == "always":
        assert created.is_error and "INVOICE_MCP_CONFIRM" in text_of(created) and not posts
        assert archived.is_error and not sandbox.requests(method="DELETE")
    else:
        assert created.structured_content["outcome"] == "created" and len(posts) == 1
        assert archived.structured_content["outcome"] == "archived"


async def test_never_policy_does_not_ask_even_capable_clients(sandbox: Sandbox) -> None:
    seen: list[str] = []
    server = build_server(settings_for(sandbox, INVOICE_MCP_CONFIRM="never"))
    async with Client(server, elicitation_callback=answering("decline", seen)) as c:
        created = await c.call_tool("create_invoice", create_args(sandbox))
    assert seen == [] and created.structured_content["outcome"] == "created"


@pytest.mark.slow
async def test_prompts_are_registered(mcp_client: Client) -> None:
    prompts = {p.name for p in (await mcp_client.list_prompts()).prompts}
    assert {"overdue_followup", "month_end_review", "draft_invoice"} <= prompts
    got = await mcp_client.get_prompt("overdue_followup", {"customer": "Acme Dental Group"})
    assert "Acme Dental Group" in got.messages[0].content.text  # type: ignore[union-attr]
