"""Payments tied to their invoices exactly (through /payments?invoice_id=, never by amounts), the
attribution index surviving a restart, and the failed-attempt filter, through real MCP sessions
against the sandbox over real HTTP, in both host views."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server

from ..conftest import settings_for, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
ROW = re.compile(r"^([A-Za-z0-9_.:/-]+) «")


def oracle(sandbox: Sandbox) -> dict[str, tuple[str, str]]:
    """payment id -> (invoice id, invoice number), from the sandbox's own link."""
    numbers = {i["id"]: i["invoice_number"] for i in sandbox.invoices()}
    return {p["id"]: (inv, numbers[inv]) for inv, ps in sandbox.payments_by_invoice().items() for p in ps}


def walks(sandbox: Sandbox) -> list[str]:
    return [r.query["invoice_id"] for r in sandbox.requests("GET", "/payments") if "invoice_id" in r.query]


def payment_objects(sc: dict[str, Any]) -> list[dict[str, Any]]:
    """The structured rows as objects (cols as keys, the customer named)."""
    rows = [dict(zip(sc["cols"], row, strict=True)) for row in sc["rows"]]
    return [r | {"customer": None if r["customer"] is None else sc["customers"][r["customer"]]} for r in rows]


async def call(c: Client, tool: str, **args: Any) -> tuple[dict[str, Any], str]:
    r = await c.call_tool(tool, args)
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None
    if tool == "list_payments":
        r.structured_content["payments"] = payment_objects(r.structured_content)
    return r.structured_content, text_of(r)


async def test_every_row_names_its_invoice_in_both_views(mcp_client: Client, sandbox: Sandbox) -> None:
    truth = oracle(sandbox)
    sc, text = await call(mcp_client, "list_payments", limit=50)
    assert sc.get("not_attributed") is None
    assert len(sc["payments"]) == 50
    for row in sc["payments"]:
        want = truth.get(row["id"])
        assert row.get("invoice") == (want[1] if want else None)
        line = next(ln for ln in text.splitlines() if f"| {row['id']}" in ln)
        if want:
            assert line.endswith(f"| invoice «{want[1]}» | {row['id']}")
        else:
            assert "invoice «" not in line
    assert any(truth.get(r["id"]) for r in sc["payments"])


async def test_listing_for_one_invoice_attributes_without_any_walk(mcp_client: Client, sandbox: Sandbox) -> None:
    truth = oracle(sandbox)
    inv_id, number = next(iter(truth.values()))
    before = len(walks(sandbox))
    sc, _ = await call(mcp_client, "list_payments", invoice=number, limit=100)
    assert {p["invoice"] for p in sc["payments"]} == {number}
    assert walks(sandbox)[before:] == [inv_id]  # the listing itself; no attribution walks
    owner = next(p["customer_id"] for p in sandbox.payments() if p["id"] == sc["payments"][0]["id"])
    sc2, _ = await call(mcp_client, "list_payments", customer_id=owner, limit=100)
    for p in sc2["payments"]:
        assert p.get("invoice") == (truth[p["id"]][1] if p["id"] in truth else None)


async def test_index_survives_a_restart(sandbox: Sandbox, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    settings = settings_for(sandbox, INVOICE_MCP_STATE=url)
    async with Client(build_server(settings)) as c:
        first, _ = await call(c, "list_payments", limit=40)
    assert walks(sandbox), "a cold index walks invoices' payments"
    sandbox.clear_log()
    async with Client(build_server(settings)) as c:
        second, text = await call(c, "list_payments", limit=40)
    assert walks(sandbox) == []  # every row was attributed by the first server, read back from the file
    assert [p.get("invoice") for p in second["payments"]] == [p.get("invoice") for p in first["payments"]]
    assert any(p.get("invoice") for p in second["payments"]) and "invoice «" in text


async def test_failed_attempt_still_unpaid_is_one_exact_call(mcp_client: Client, sandbox: Sandbox) -> None:
    failed_on = {inv for inv, ps in sandbox.payments_by_invoice().items() if any(p["status"] == "failed" for p in ps)}
    owed = {"open", "overdue", "partially_paid", "sent", "viewed", "pending"}
    want = [
        i["invoice_number"]
        for i in sandbox.invoices(include_archived=False)
        if i["id"] in failed_on and i["status"] in owed
    ]
    assert want
    r = await mcp_client.call_tool("list_invoices", {"failed_payment": True, "unpaid": True, "limit": 100})
    assert not r.is_error, text_of(r)
    sc, text = r.structured_content or {}, text_of(r)
    assert [row[0] for row in sc["rows"]] == want  # structured view
    assert [m.group(1) for ln in text.splitlines() if (m := ROW.match(ln))] == want  # text view
    assert text.startswith(f"{len(want)} of {len(want)} invoices (unpaid, with a failed payment attempt)")
    assert "not yet attributed" not in text and "not yet attributed" not in sc["scope"]

    all_failed = [i["invoice_number"] for i in sandbox.invoices(include_archived=False) if i["id"] in failed_on]
    s, stext = await call(mcp_client, "summarize_invoices", failed_payment=True)
    assert s["count"] == len(all_failed) > len(want)
    assert f"{len(all_failed)} invoices (with a failed payment attempt)" in stext


async def test_a_spent_budget_is_reported_and_the_same_call_goes_on(
    mcp_client: Client, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from invoice_mcp.service import attribution

    monkeypatch.setattr(attribution, "MAX_WALKS_PER_CALL", 3)
    truth = oracle(sandbox)
    sc, text = await call(mcp_client, "list_payments", limit=30)
    left = sc["not_attributed"]
    assert left and f"{left} payments not yet tied to an invoice" in text
    named = [p for p in sc["payments"] if p.get("invoice")]
    assert all(p["invoice"] == truth[p["id"]][1] for p in named)  # what is named is exact, never guessed
    for _ in range(30):
        before = sc.get("not_attributed")
        sc, text = await call(mcp_client, "list_payments", limit=30)
        if not sc.get("not_attributed"):
            break
        assert sc["not_attributed"] < before  # every call makes progress
    assert sc.get("not_attributed") is None and "not yet tied" not in text
    for p in sc["payments"]:
        assert p.get("invoice") == (truth[p["id"]][1] if p["id"] in truth else None)

    r = await mcp_client.call_tool("list_invoices", {"failed_payment": True, "unpaid": True})
    assert not r.is_error and r.structured_content is not None
    assert "not yet attributed (per-call budget)" in r.structured_content["scope"]
    assert "not yet attributed (per-call budget)" in text_of(r)
