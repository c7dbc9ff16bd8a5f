"""Each tool through a real MCP client session against the sandbox over HTTP."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver.exceptions import ToolError

from invoice_mcp.api.client import APIClient
from invoice_mcp.api.errors import InvalidRequestError
from invoice_mcp.api.models import NewInvoice, NewLineItem
from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server import build_server
from invoice_mcp.server.errors import tool_errors

from .conftest import settings_for, text_of

pytestmark = pytest.mark.anyio


def visible(sb: Sandbox, **where: str) -> list[dict[str, Any]]:
    return [i for i in sb.invoices(include_archived=False) if all(i.get(k) == v for k, v in where.items())]


async def walk(c: Client, limit: int, **filters: Any) -> tuple[list[str], int]:
    ids: list[str] = []
    cursor = None
    calls = 0
    while True:
        args = {"limit": limit, **filters, **({"cursor": cursor} if cursor else {})}
        r = await c.call_tool("list_invoices", args)
        assert not r.is_error, text_of(r)
        sc = r.structured_content
        assert sc is not None
        ids += [row[0] for row in sc["rows"]]
        calls += 1
        assert None not in sc.values()  # no nulls: absent keys instead
        if "next_cursor" not in sc:
            return ids, calls
        cursor = sc["next_cursor"]


@pytest.mark.parametrize("limit", [1, 7, 25, 100])
@pytest.mark.slow
async def test_cursor_walk_returns_every_invoice_once_in_order(
    mcp_client: Client, sandbox: Sandbox, limit: int
) -> None:
    ids, _ = await walk(mcp_client, limit)
    expected = [i["invoice_number"] for i in visible(sandbox)]
    assert ids == expected
    pages = -(-len(expected) // 100)
    listing = sandbox.requests(method="GET", path_prefix="/invoices")
    assert len(listing) == pages  # one upstream request per 100 invoices, whatever the chunk size


@pytest.mark.parametrize("limit", [7, 25])
@pytest.mark.slow
async def test_cursor_walk_with_filters(mcp_client: Client, sandbox: Sandbox, limit: int) -> None:
    customer = sandbox.customers()[0]
    ids, _ = await walk(mcp_client, limit, status="paid", customer_id=customer["id"])
    assert ids == [i["invoice_number"] for i in visible(sandbox, status="paid", customer_id=customer["id"])]
    assert ids


@pytest.mark.slow
async def test_cursor_survives_a_new_server_instance(sandbox: Sandbox) -> None:
    """Stateless: a cursor from one server (process, replica) works on another."""
    s = settings_for(sandbox)
    async with Client(build_server(s)) as a:
        first = (await a.call_tool("list_invoices", {"limit": 30})).structured_content
    async with Client(build_server(s)) as b:
        second = await b.call_tool("list_invoices", {"cursor": first["next_cursor"], "limit": 30})
    rows = first["rows"] + second.structured_content["rows"]
    assert [r[0] for r in rows] == [i["invoice_number"] for i in visible(sandbox)][:60]


async def test_prev_cursor_pages_backwards_across_upstream_pages(mcp_client: Client, sandbox: Sandbox) -> None:
    expected = [i["invoice_number"] for i in visible(sandbox)]
    chunks = []
    cursor = None
    for _ in range(6):  # 6 × 30 = 180 rows: crosses the first upstream page boundary
        r = await mcp_client.call_tool("list_invoices", {"limit": 30, **({"cursor": cursor} if cursor else {})})
        chunks.append(r.structured_content)
        cursor = r.structured_content["next_cursor"]
    assert "prev_cursor" not in chunks[0]
    back = chunks[-1]
    for i in range(5, 0, -1):
        r = await mcp_client.call_tool("list_invoices", {"limit": 30, "cursor": back["prev_cursor"]})
        assert not r.is_error, text_of(r)
        back = r.structured_content
        assert [x[0] for x in back["rows"]] == expected[(i - 1) * 30 : i * 30]
    assert "prev_cursor" not in back


async def test_tampered_and_foreign_cursors_are_refused_without_upstream_call(
    mcp_client: Client, sandbox: Sandbox
) -> None:
    r = await mcp_client.call_tool("list_invoices", {"limit": 5, "status": "paid"})
    cur = r.structured_content["next_cursor"]
    before = len(sandbox.requests())
    raw = base64.urlsafe_b64decode(cur + "=" * (-len(cur) % 4))
    forged = base64.urlsafe_b64encode(raw[:-3] + b"99}").decode().rstrip("=")
    for bad in (cur[:-2] + ("A" if cur[-2] != "A" else "B") + cur[-1], cur[:10], "not-a-cursor!!", forged):
        out = await mcp_client.call_tool("list_invoices", {"cursor": bad})
        assert out.is_error and "cursor" in text_of(out) and out.structured_content is None
    other = await mcp_client.call_tool("list_invoices", {"cursor": cur, "status": "open"})
    assert other.is_error and "different filters" in text_of(other)
    assert len(sandbox.requests()) == before


async def test_get_invoice_by_id_and_number(mcp_client: Client, sandbox: Sandbox) -> None:
    inv = visible(sandbox)[3]
    by_id = await mcp_client.call_tool("get_invoice", {"invoice": inv["id"]})
    by_number = await mcp_client.call_tool("get_invoice", {"invoice": inv["invoice_number"]})
    assert not by_id.is_error and not by_number.is_error
    assert by_id.structured_content == by_number.structured_content
    d = by_id.structured_content
    assert d["total"] == inv["total"] and len(d["line_items"]) == len(inv["line_items"])
    assert d["customer"] and inv["invoice_number"] in text_of(by_id)
    number_lookups = [r for r in sandbox.requests(path_prefix="/invoices") if "invoice_number" in r.query]
    assert len(number_lookups) == 1


async def test_unknown_invoice_is_actionable(mcp_client: Client) -> None:
    for ref in ("inv_doesnotexist", "INV-999999"):
        r = await mcp_client.call_tool("get_invoice", {"invoice": ref})
        assert r.is_error and "list_invoices(invoice_number=" in text_of(r) and r.structured_content is None


@pytest.mark.parametrize(
    ("tool", "args", "field"),
    [
        ("list_invoices", {"limit": 0}, "limit"),
        ("list_invoices", {"limit": 101}, "limit"),
        ("list_invoices", {"status": "unpaid"}, "status"),
        ("list_invoices", {"due_date_start": "2026-02-30"}, "due_date_start"),
        ("list_invoices", {"created_at_start": "2026-05-01", "created_at_end": "2026-04-01"}, "created_at_start"),
        ("list_invoices", {"customer": "Acme", "customer_id": "cus_1"}, "customer"),
        ("get_invoice", {"invoice": "../etc/passwd"}, "invoice"),
        ("get_invoice", {}, "invoice"),
        ("create_invoice", {"customer_id": "c", "line_items": []}, "line_items"),
        (
            "create_invoice",
            {"customer_id": "c", "line_items": [{"description": "x", "amount": -1, "quantity": 1}]},
            "amount",
        ),
        (
            "create_invoice",
            {"customer_id": "c", "line_items": [{"description": "x", "amount": 1.234, "quantity": 1}]},
            "amount",
        ),
        (
            "create_invoice",
            {"customer_id": "c", "line_items": [{"description": "x", "amount": 1, "quantity": 1.5}]},
            "quantity",
        ),
        (
            "create_invoice",
            {"customer_id": "c", "line_items": [{"description": "x", "amount": 1, "quantity": 1}], "currency": "EUR"},
            "currency",
        ),
        (
            "create_invoice",
            {
                "customer_id": "c",
                "line_items": [{"description": "x", "amount": 1, "quantity": 1}],
                "due_date": "01/12/2026",
            },
            "due_date",
        ),
        ("summarize_invoices", {"as_of": "2026-13-01"}, "as_of"),
        ("find_customers", {"name": ""}, "name"),
    ],
)
async def test_invalid_input_names_field_and_sends_nothing(
    mcp_client: Client, sandbox: Sandbox, tool: str, args: dict[str, Any], field: str
) -> None:
    r = await mcp_client.call_tool(tool, args)
    text = text_of(r)
    assert r.is_error and field in text and r.structured_content is None
    assert "Traceback" not in text and "errors.pydantic.dev" not in text
    assert sandbox.requests() == []


@pytest.mark.slow
async def test_api_validation_error_reaches_the_model(mcp_client: Client, sandbox: Sandbox) -> None:
    """A real 422 from the sandbox (payment link of an archived invoice): the model reads the API's field error."""
    inv = visible(sandbox, status="open")[0]
    archived = await mcp_client.call_tool("archive_invoice", {"invoice": inv["id"]})
    assert not archived.is_error
    r = await mcp_client.call_tool("get_invoice_payment_link", {"invoice": inv["id"]})
    text = text_of(r)
    assert r.is_error and "invoice is archived" in text, text
    assert "Traceback" not in text and "https://" not in text
    assert [q.status for q in sandbox.requests(path_prefix=f"/invoices/{inv['id']}/payment-link")] == [422]


async def test_api_validation_errors_are_all_kept(sandbox: Sandbox) -> None:
    """The API client keeps every field of a real 422 (the sandbox rejects what the wire model allows)."""
    bad = NewInvoice(
        customer_id="cus_nobody",
        currency="EUR",
        due_date="2026-02-30",
        line_items=[NewLineItem(description="x", amount=Decimal("1"), quantity=1)],
    )
    async with APIClient(settings_for(sandbox)) as api:
        with pytest.raises(InvalidRequestError) as err:
            await api.create_invoice(bad)
    assert err.value.status == 422
    assert err.value.validation_errors == {
        "customer_id": "customer not found",
        "currency": "must be one of: USD",
        "due_date": "must be a valid date in YYYY-MM-DD format",
    }
    assert [q.status for q in sandbox.requests(method="POST", path_prefix="/invoices")] == [422]
    # ... and the one error mapping hands every field to the model.
    with pytest.raises(ToolError) as shown, tool_errors():
        raise err.value
    for field, problem in err.value.validation_errors.items():
        assert f"{field}: «{problem}»" in str(shown.value)  # the API's words, quoted as data


async def test_create_unknown_customer_sends_no_post(mcp_client: Client, sandbox: Sandbox) -> None:
    r = await mcp_client.call_tool(
        "create_invoice",
        {"customer_id": "cus_nobody", "line_items": [{"description": "x", "amount": 10, "quantity": 1}]},
    )
    assert r.is_error and "find_customers" in text_of(r)
    assert not sandbox.requests(method="POST", path_prefix="/invoices")


async def test_archive_restore_round_trip_and_links(mcp_client: Client, sandbox: Sandbox) -> None:
    inv = visible(sandbox, status="open")[0]
    a = await mcp_client.call_tool("archive_invoice", {"invoice": inv["invoice_number"]})
    assert not a.is_error and a.structured_content["outcome"] == "archived"
    assert "restore_invoice" in text_of(a)
    assert inv["id"] not in [i["id"] for i in visible(sandbox)]
    again = await mcp_client.call_tool("archive_invoice", {"invoice": inv["id"]})
    assert not again.is_error  # idempotent
    r = await mcp_client.call_tool("restore_invoice", {"invoice": inv["invoice_number"]})
    assert not r.is_error and r.structured_content["status"] == "open"
    pay = await mcp_client.call_tool("get_invoice_payment_link", {"invoice": inv["id"]})
    pdf = await mcp_client.call_tool("get_invoice_pdf_link", {"invoice": inv["invoice_number"]})
    assert pay.structured_content["url"].startswith("https://")
    assert pdf.structured_content["url"].startswith("https://")
    assert "Bearer secret" in text_of(pay)


async def test_legacy_protocol_era_works_too(sandbox: Sandbox) -> None:
    async with Client(build_server(settings_for(sandbox)), mode="legacy") as c:
        ids, _ = await walk(c, 50)
        r = await c.call_tool("get_invoice", {"invoice": "INV-1001"})
    assert ids == [i["invoice_number"] for i in visible(sandbox)]
    assert not r.is_error


async def test_invoice_resource_template(mcp_client: Client, sandbox: Sandbox) -> None:
    inv = visible(sandbox)[0]
    res = await mcp_client.read_resource(f"invoice://{inv['invoice_number']}")
    data = json.loads(res.contents[0].text)  # type: ignore[union-attr]
    assert data["id"] == inv["id"] and data["total"] == inv["total"]
    templates = await mcp_client.list_resource_templates()
    assert any(t.uri_template == "invoice://{ref}" for t in templates.resource_templates)
