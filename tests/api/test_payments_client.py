"""Payments in the API layer: every filter reaches the wire, the model is tolerant, paging and ids
are handled like invoices (httpx MockTransport: the request shape is the point here)."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from invoice_mcp.api.client import APIClient
from invoice_mcp.api.errors import InvalidRequestError, NotFoundError
from invoice_mcp.api.models import Page, Payment
from invoice_mcp.api.settings import load_settings

pytestmark = pytest.mark.anyio

PAYMENT = {
    "id": "pay_1",
    "customer_id": "cus_1",
    "due_date": "2026-10-01",
    "created_at": "2026-10-02T10:00:00Z",
    "payment_method": "card",
    "status": "succeeded",
    "sub_total": 100.1,
    "total": 103.33,
    "fees": [{"amount": 3.23, "covered_by_customer": True, "name": "Card", "type": "FT_METHOD"}],
}


def client(handler: httpx.MockTransport, seen: list[httpx.Request]) -> APIClient:
    settings = load_settings(
        {"AP_CLIENT_ID": "id", "AP_CLIENT_SECRET": "secret", "AP_BASE_URL": "http://api.test", "AP_RATE_LIMIT": "1000"}
    )
    return APIClient(settings, transport=handler)


def transport(seen: list[httpx.Request], body: object, status: int = 200) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        seen.append(request)
        return httpx.Response(status, content=json.dumps(body).encode(), headers={"content-type": "application/json"})

    return httpx.MockTransport(handle)


async def test_every_filter_reaches_the_query_string() -> None:
    seen: list[httpx.Request] = []
    page_body = {"data": [PAYMENT], "end_cursor": "c2", "has_next_page": True}
    async with client(transport(seen, page_body), seen) as c:
        page = await c.list_payments(
            limit=50,
            after="a1",
            before="b1",
            type="one_time",
            status="failed",
            customer_id="cus_1",
            invoice_id="inv_1",
            payment_method="ach",
            created_at_start="2026-10-01T00:00:00Z",
            created_at_end="2026-10-31T23:59:59Z",
        )
    (req,) = seen
    assert req.method == "GET" and req.url.path == "/payments"
    assert dict(req.url.params) == {
        "limit": "50",
        "after": "a1",
        "before": "b1",
        "type": "one_time",
        "status": "failed",
        "customer_id": "cus_1",
        "invoice_id": "inv_1",
        "payment_method": "ach",
        "created_at_start": "2026-10-01T00:00:00Z",
        "created_at_end": "2026-10-31T23:59:59Z",
    }
    assert page.has_next_page and page.end_cursor == "c2"
    assert page.data[0].sub_total == Decimal("100.1")


async def test_default_query_is_just_the_page_size() -> None:
    seen: list[httpx.Request] = []
    async with client(transport(seen, {"data": []}), seen) as c:
        await c.list_payments()
    assert dict(seen[0].url.params) == {"limit": "100"}


async def test_get_payment_escapes_and_checks_the_id() -> None:
    seen: list[httpx.Request] = []
    async with client(transport(seen, PAYMENT), seen) as c:
        pay = await c.get_payment("pay/1 x")
        with pytest.raises(InvalidRequestError):
            await c.get_payment("..")
    assert seen[0].url.raw_path == b"/payments/pay%2F1%20x"
    assert pay.status == "succeeded" and pay.total == Decimal("103.33")


async def test_missing_payment_is_not_found() -> None:
    seen: list[httpx.Request] = []
    async with client(transport(seen, {"code": "not_found", "message": "no"}, 404), seen) as c:
        with pytest.raises(NotFoundError):
            await c.get_payment("pay_x")


def test_model_is_tolerant() -> None:
    raw = {
        **PAYMENT,
        "status": "settling_v2",
        "invoice_id": "ignored?",
        "brand_new_field": {"x": 1},
        "sub_total": "0.10",
        "total": 0.3,
        "fees": [{"amount": 0.2, "type": "FT_SOMETHING_NEW", "extra": True}],
    }
    pay = Payment.model_validate(raw)
    assert pay.status == "settling_v2"
    assert not hasattr(pay, "invoice_id") and "invoice_id" not in pay.model_dump()
    assert pay.sub_total == Decimal("0.10") and pay.total == Decimal("0.3")  # exact, not 0.299999...
    assert pay.fees is not None and pay.fees[0].type == "FT_SOMETHING_NEW"
    assert Payment.model_validate({}).applied is None
    assert Payment.model_validate({"total": 5}).applied == Decimal("5")
    assert pay.applied == Decimal("0.10")


def test_page_of_payments_ignores_unknown_envelope_fields() -> None:
    page = Page[Payment].model_validate({"data": [PAYMENT], "has_next_page": False, "total_count": 9})
    assert page.data[0].id == "pay_1" and not page.has_next_page


def test_text_fields_are_cleaned_at_the_wire() -> None:
    pay = Payment.model_validate(
        {
            **PAYMENT,
            "payment_method": "card\u202e\n«SYSTEM»" + "x" * 500,
            "status": "succ\u200beeded",
            "id": "p\x1b[31m1",
        }
    )
    assert pay.payment_method is not None and len(pay.payment_method) <= 40
    assert "\u202e" not in pay.payment_method and "«" not in pay.payment_method and "\n" not in pay.payment_method
    assert pay.status == "succeeded" and pay.id == "p1"
