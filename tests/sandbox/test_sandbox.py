"""Conformance tests for the embedded sandbox, driven over real HTTP with plain httpx."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import json
import math
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from invoice_mcp.sandbox import DEMO_CLIENT_ID, RequestRecord, Sandbox

from ..conftest import TODAY, new_sandbox
from .conftest import CREDS, GRANT


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with new_sandbox() as sb:
        yield sb


@pytest.fixture
def raw(sb: Sandbox) -> Iterator[httpx.Client]:
    """Unauthenticated client."""
    with httpx.Client(base_url=sb.base_url) as client:
        yield client


def assert_http_error(resp: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"code", "message", "validation_errors"}
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["validation_errors"], dict)
    return dict(body["validation_errors"])


def walk(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Follow end_cursor until has_next_page is false."""
    items: list[dict[str, Any]] = []
    query = dict(params)
    while True:
        page = client.get(path, params=query).json()
        items += page["data"]
        if not page["has_next_page"]:
            return items
        query["after"] = page["end_cursor"]


def new_invoice(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "currency": "USD",
        "line_items": [{"description": "Managed endpoint – per seat", "amount": 19.99, "quantity": 3}],
    }
    body.update(overrides)
    return body


# -- auth --------------------------------------------------------------------------------------------


def test_token_ok(sb: Sandbox, raw: httpx.Client) -> None:
    resp = raw.post("/oauth/token", auth=CREDS, data=GRANT)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert re.fullmatch(r"[0-9a-f]{56}", body["access_token"])
    assert body["expires_in"] == 3600
    assert body["token_type"] == "bearer"
    assert sb.issued_tokens == [body["access_token"]]
    assert sb.token_requests == 1
    (rec,) = sb.requests("POST", "/oauth/token")
    assert (rec.auth, rec.token, rec.status, rec.body) == ("basic", None, 200, b"grant_type=client_credentials")


def test_token_bad_credentials_and_grant(sb: Sandbox, raw: httpx.Client) -> None:
    forbidden = {"code": "forbidden", "message": "Invalid credentials", "validation_errors": {}}
    wrong = raw.post("/oauth/token", auth=(DEMO_CLIENT_ID, "nope"), data=GRANT)
    assert wrong.status_code == 403 and wrong.json() == forbidden
    missing = raw.post("/oauth/token", data=GRANT)
    assert missing.status_code == 403 and missing.json() == forbidden
    assert_http_error(raw.post("/oauth/token", auth=CREDS, data={"grant_type": "password"}), 400, "bad_request")
    assert_http_error(raw.post("/oauth/token", auth=CREDS), 400, "bad_request")
    assert sb.token_requests == 4
    assert sb.issued_tokens == []


def test_bearer_required_and_expire_tokens(sb: Sandbox, raw: httpx.Client, api: httpx.Client) -> None:
    unauthorized = {"code": "unauthorized", "message": "missing or expired access token", "validation_errors": {}}
    assert raw.get("/invoices").json() == unauthorized
    assert raw.get("/invoices").status_code == 401
    bogus = raw.get("/invoices", headers={"Authorization": "Bearer " + "0" * 56})
    assert bogus.status_code == 401
    basic = raw.get("/invoices", auth=CREDS)
    assert basic.status_code == 401

    assert api.get("/invoices").status_code == 200
    sb.faults.expire_tokens()
    assert api.get("/invoices").status_code == 401
    fresh = raw.post("/oauth/token", auth=CREDS, data=GRANT).json()["access_token"]
    assert raw.get("/invoices", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    assert len(sb.issued_tokens) == 2


def test_token_ttl_expiry() -> None:
    with (
        new_sandbox(testing=False, token_ttl_s=0.0) as short,
        httpx.Client(base_url=short.base_url) as client,
    ):
        body = client.post("/oauth/token", auth=CREDS, data=GRANT).json()
        assert body["expires_in"] == 0
        resp = client.get("/invoices", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert resp.status_code == 401


def test_reset_invalidates_tokens_and_clears_log(sb: Sandbox, api: httpx.Client) -> None:
    assert api.get("/customers").status_code == 200
    sb.reset()
    assert sb.requests() == [] and sb.issued_tokens == [] and sb.token_requests == 0
    assert api.get("/customers").status_code == 401


# -- lists & paging -----------------------------------------------------------------------------------


def test_envelope_shape(api: httpx.Client) -> None:
    resp = api.get("/invoices", params={"limit": 5})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    page = resp.json()
    assert set(page) == {"data", "start_cursor", "end_cursor", "has_next_page", "has_previous_page"}
    assert len(page["data"]) == 5
    assert page["has_next_page"] is True and page["has_previous_page"] is False
    empty = api.get("/invoices", params={"customer_id": "cus_unknown"}).json()
    assert empty == {
        "data": [],
        "start_cursor": "",
        "end_cursor": "",
        "has_next_page": False,
        "has_previous_page": False,
    }


def test_forward_walk_matches_oracle(sb: Sandbox, api: httpx.Client) -> None:
    expected = sb.invoices(include_archived=False)
    seen: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 37}
    pages = 0
    while True:
        page = api.get("/invoices", params=query).json()
        assert page["has_previous_page"] is (pages > 0)
        seen += page["data"]
        pages += 1
        if not page["has_next_page"]:
            break
        query["after"] = page["end_cursor"]
    assert seen == expected
    assert pages == math.ceil(len(expected) / 37)
    assert len(expected) < len(sb.invoices())  # some are archived and hidden


def test_order_is_created_at_then_id_descending(sb: Sandbox) -> None:
    invoices = sb.invoices()
    keys = [(inv["created_at"], inv["id"]) for inv in invoices]
    assert keys == sorted(keys, reverse=True)


def test_backward_paging_with_before(api: httpx.Client) -> None:
    pages = []
    query: dict[str, Any] = {"limit": 25}
    for _ in range(4):
        page = api.get("/invoices", params=query).json()
        pages.append(page)
        query["after"] = page["end_cursor"]
    # From page 4 walk back with start_cursor: pages 3, 2, 1 come back identical, in list order.
    current = pages[3]
    for expected in reversed(pages[:3]):
        prev = api.get("/invoices", params={"limit": 25, "before": current["start_cursor"]}).json()
        assert prev["data"] == expected["data"]
        assert prev["has_next_page"] is True
        assert prev["has_previous_page"] is expected["has_previous_page"]
        current = prev
    assert current["has_previous_page"] is False
    # "before" with a larger limit than is available returns only what precedes the cursor.
    head = api.get("/invoices", params={"limit": 100, "before": pages[1]["start_cursor"]}).json()
    assert head["data"] == pages[0]["data"] and head["has_previous_page"] is False


def test_limit_validation_and_clamp(api: httpx.Client) -> None:
    assert len(api.get("/invoices", params={"limit": 500}).json()["data"]) == 100
    assert len(api.get("/invoices").json()["data"]) == 100  # default
    for bad in ("0", "-3", "abc", "2.5"):
        errors = assert_http_error(api.get("/invoices", params={"limit": bad}), 400, "bad_request")
        assert "limit" in errors


def test_cursors_need_percent_encoding(sb: Sandbox, api: httpx.Client) -> None:
    first = api.get("/invoices", params={"limit": 10}).json()
    customers = api.get("/customers", params={"limit": 2}).json()
    for cursor in (first["start_cursor"], first["end_cursor"], customers["end_cursor"]):
        assert ("+" in cursor or "/" in cursor) and cursor.endswith("=")
        base64.b64decode(cursor, validate=True)  # standard alphabet
    cursor = first["end_cursor"]

    # Correctly encoded: works.
    ok = api.get("/invoices", params={"limit": 10, "after": cursor})
    assert ok.status_code == 200 and ok.json()["data"][0] == sb.invoices(include_archived=False)[10]
    # Left raw, "+" arrives as a space: the cursor is rejected, not silently misread.
    sb.clear_log()
    bad = api.get(f"{sb.base_url}/invoices?limit=10&after={cursor}")
    (rec,) = sb.requests()
    assert "+" in rec.raw_query and " " in rec.query["after"]
    assert "after" in assert_http_error(bad, 400, "bad_request")
    # urlsafe alphabet, garbage, and a customer cursor used on invoices are all invalid.
    urlsafe = cursor.replace("+", "-").replace("/", "_")
    for wrong in (urlsafe, "not-a-cursor", customers["end_cursor"]):
        assert "after" in assert_http_error(api.get("/invoices", params={"after": wrong}), 400, "bad_request")
    assert "before" in assert_http_error(api.get("/invoices", params={"before": "%%%"}), 400, "bad_request")


def test_filters(sb: Sandbox, api: httpx.Client) -> None:
    visible = sb.invoices(include_archived=False)
    everything = sb.invoices()

    customer = visible[3]["customer_id"]
    got = walk(api, "/invoices", customer_id=customer, limit=7)
    assert got == [inv for inv in visible if inv["customer_id"] == customer] and got

    number = visible[5]["invoice_number"]
    assert api.get("/invoices", params={"invoice_number": number}).json()["data"] == [visible[5]]
    assert api.get("/invoices", params={"invoice_number": number + "0"}).json()["data"] == []

    for status in ("open", "paid", "overdue", "partially_paid", "draft", "archived"):
        got = walk(api, "/invoices", status=status)
        assert got == [inv for inv in everything if inv["status"] == status], status
        assert got, f"seed data should contain {status} invoices"
    errors = assert_http_error(api.get("/invoices", params={"status": "void"}), 400, "bad_request")
    assert "status" in errors

    # created_at bounds are inclusive; offsets are honoured.
    lo, hi = visible[40]["created_at"], visible[10]["created_at"]
    got = walk(api, "/invoices", created_at_start=lo, created_at_end=hi)
    assert got == [inv for inv in visible if lo <= inv["created_at"] <= hi]
    assert got[0]["created_at"] == hi and got[-1]["created_at"] == lo
    lo_dt = dt.datetime.fromisoformat(lo.replace("Z", "+00:00"))
    lo_offset = lo_dt.astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat()
    assert walk(api, "/invoices", created_at_start=lo_offset, created_at_end=hi) == got

    # due_date compares as that date at 00:00:00Z, inclusive.
    start, end = "2026-10-01T00:00:00Z", "2026-10-31T00:00:00Z"
    got = walk(api, "/invoices", due_date_start=start, due_date_end=end)
    assert got == [inv for inv in visible if "2026-10-01" <= inv["due_date"] <= "2026-10-31"] and got
    late = walk(api, "/invoices", due_date_start="2026-10-31T00:00:01Z", due_date_end=end)
    assert late == []

    combined = walk(api, "/invoices", customer_id=customer, status="paid", due_date_end=end)
    assert combined == [
        inv
        for inv in visible
        if inv["customer_id"] == customer and inv["status"] == "paid" and inv["due_date"] <= "2026-10-31"
    ]

    for param in ("created_at_start", "created_at_end", "due_date_start", "due_date_end"):
        for bad in ("2026-01-01", "yesterday", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00 05:00"):
            errors = assert_http_error(api.get("/invoices", params={param: bad}), 400, "bad_request")
            assert param in errors


def test_filtered_backward_paging(api: httpx.Client, sb: Sandbox) -> None:
    expected = [inv for inv in sb.invoices() if inv["status"] == "paid"]
    p1 = api.get("/invoices", params={"status": "paid", "limit": 20}).json()
    p2 = api.get("/invoices", params={"status": "paid", "limit": 20, "after": p1["end_cursor"]}).json()
    assert p1["data"] + p2["data"] == expected[:40]
    back = api.get("/invoices", params={"status": "paid", "limit": 20, "before": p2["start_cursor"]}).json()
    assert back["data"] == p1["data"]
    assert (back["has_previous_page"], back["has_next_page"]) == (False, True)


def test_customers(sb: Sandbox, api: httpx.Client) -> None:
    expected = sb.customers()
    assert len(expected) == 12
    assert walk(api, "/customers", limit=5) == expected
    fields = (
        "id name legal_name email external_id customer_integration_id default_payment_method_id ein "
        "street_address sub_premise city state postal_code country created_at"
    )
    assert all(list(c) == fields.split() for c in expected)
    assert all(re.fullmatch(r"cus_[A-Za-z0-9]{20}", c["id"]) for c in expected)
    assert any(v is None for c in expected for v in c.values())

    acme = api.get("/customers", params={"company_name": "aCmE"}).json()["data"]
    assert sorted(c["name"] for c in acme) == ["Acme Dental Group", "Acme Industrial Supply"]
    assert api.get("/customers", params={"company_name": "northwind"}).json()["data"][0]["name"] == (
        "Northwind Traders"
    )
    assert api.get("/customers", params={"company_name": "zzz"}).json()["data"] == []

    first = expected[0]
    assert api.get(f"/customers/{first['id']}").json() == first
    assert_http_error(api.get("/customers/cus_missing"), 404, "not_found")
    before = api.get("/customers", params={"limit": 3, "before": walk_cursor(api, 3)}).json()
    assert before["data"] == expected[:3]
    window = {"created_at_start": expected[4]["created_at"], "created_at_end": expected[1]["created_at"]}
    assert walk(api, "/customers", **window) == expected[1:5]
    assert "created_at_end" in assert_http_error(
        api.get("/customers", params={"created_at_end": "soon"}), 400, "bad_request"
    )


def walk_cursor(api: httpx.Client, limit: int) -> str:
    page1 = api.get("/customers", params={"limit": limit}).json()
    return str(api.get("/customers", params={"limit": limit, "after": page1["end_cursor"]}).json()["start_cursor"])


# -- single invoices --------------------------------------------------------------------------------


def test_get_invoice_and_archive_restore(sb: Sandbox, api: httpx.Client) -> None:
    target = sb.invoices(include_archived=False)[2]
    assert api.get(f"/invoices/{target['id']}").json() == target

    archived = api.delete(f"/invoices/{target['id']}")
    assert archived.status_code == 200 and archived.json() == {**target, "status": "archived"}
    assert api.delete(f"/invoices/{target['id']}").json() == {**target, "status": "archived"}  # idempotent
    assert target["id"] not in {inv["id"] for inv in walk(api, "/invoices")}
    assert target["id"] in {inv["id"] for inv in walk(api, "/invoices", status="archived")}
    assert api.get(f"/invoices/{target['id']}").json()["status"] == "archived"
    assert_http_error(api.get(f"/invoices/{target['id']}/payment-link"), 422, "validation_error")

    restored = api.post(f"/invoices/{target['id']}/restore")
    assert restored.status_code == 200 and restored.json() == target
    assert api.post(f"/invoices/{target['id']}/restore").json() == target  # not archived: unchanged
    assert walk(api, "/invoices") == sb.invoices(include_archived=False)
    assert sb.invoices(include_archived=False)[2] == target

    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/restore"), ("GET", "/pdf-link")):
        assert_http_error(api.request(method, f"/invoices/inv_missing{suffix}"), 404, "not_found")


def test_links(sb: Sandbox, api: httpx.Client) -> None:
    inv = sb.invoices(include_archived=False)[0]
    link = api.get(f"/invoices/{inv['id']}/payment-link").json()
    assert set(link) == {"url"}
    assert link["url"].startswith("pay.sandbox-brand.example/p/") and "://" not in link["url"]
    assert api.get(f"/invoices/{inv['id']}/payment-link").json() == link  # stable
    pdf = api.get(f"/invoices/{inv['id']}/pdf-link").json()
    assert re.fullmatch(
        rf"https://files\.sandbox\.example/invoices/{inv['id']}\.pdf\?expires=\d+&signature=[0-9a-f]{{64}}",
        pdf["url"],
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", pdf["expires_at"])


def test_routing_on_raw_path(sb: Sandbox, api: httpx.Client) -> None:
    sb.clear_log()
    resp = api.get("/invoices/a%2Fb")
    assert_http_error(resp, 404, "not_found")
    assert resp.json()["message"] == "invoice not found"
    (rec,) = sb.requests()
    assert (rec.raw_path, rec.path) == ("/invoices/a%2Fb", "/invoices/a/b")
    # Decoded first, this would be the restore route; on the raw path it is the id "a/b/restore".
    assert api.get("/invoices/a%2Fb%2Frestore").json()["message"] == "invoice not found"
    assert_http_error(api.post("/invoices/a%2Fb%2Frestore"), 405, "method_not_allowed")
    assert api.get("/invoices/inv%2F..%2Fcustomers").json()["message"] == "invoice not found"
    assert_http_error(api.get("/v1/invoices"), 404, "not_found")
    assert_http_error(api.get("/nothing/here"), 404, "not_found")
    wrong = api.put("/invoices")
    assert_http_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "GET, POST"


# -- create ----------------------------------------------------------------------------------------------


def test_create_invoice(sb: Sandbox, api: httpx.Client) -> None:
    customer = sb.customers()[0]["id"]
    before = sb.invoices()
    body = new_invoice(
        customer_id=customer,
        line_items=[
            {"description": "Managed endpoint – per seat", "amount": 19.99, "quantity": 3},
            {"description": "Backup storage 1TB", "amount": 0.1, "quantity": 3},
            {"description": "On-site support (hours)", "amount": 150, "quantity": 2},
        ],
        memo="November services",
        exclude_from_autopay=True,
    )
    resp = api.post("/invoices", json=body)
    assert resp.status_code == 201 and resp.headers["content-type"] == "application/json"
    inv = resp.json()
    assert re.fullmatch(r"inv_[A-Za-z0-9]{24}", inv["id"])
    assert inv["invoice_number"] == f"INV-{1001 + len(before)}"
    assert inv["status"] == "open" and inv["currency"] == "USD" and inv["customer_id"] == customer
    assert inv["sub_total"] == inv["total"] == 360.27  # 59.97 + 0.30 + 300
    assert inv["line_items"] == body["line_items"]
    assert inv["memo"] == "November services" and inv["exclude_from_autopay"] is True
    assert inv["due_date"] == TODAY.isoformat()
    assert re.fullmatch(r"2026-11-25T\d\d:\d\d:\d\dZ", inv["created_at"])
    assert "last_notification_at" not in inv or inv["last_notification_at"] is None
    # Newest first, visible through the API and the oracle, index kept consistent.
    assert api.get("/invoices", params={"limit": 1}).json()["data"] == [inv]
    assert api.get(f"/invoices/{inv['id']}").json() == inv
    assert sb.invoices()[0] == inv and sb.invoices()[1:] == before
    assert walk(api, "/invoices", customer_id=customer)[0] == inv
    assert api.get("/invoices", params={"invoice_number": inv["invoice_number"]}).json()["data"] == [inv]

    second = api.post("/invoices", json=new_invoice(customer_id=customer, due_date="2026-12-31")).json()
    assert second["invoice_number"] == f"INV-{1002 + len(before)}"
    assert second["due_date"] == "2026-12-31" and second["total"] == 59.97
    assert walk(api, "/invoices", limit=50) == sb.invoices(include_archived=False)


def test_create_invoice_validation(sb: Sandbox, api: httpx.Client) -> None:
    count = len(sb.invoices())
    resp = api.post(
        "/invoices",
        json={
            "customer_id": "cus_nobody",
            "currency": "EUR",
            "due_date": "25/11/2026",
            "line_items": [
                {"description": "", "amount": -5, "quantity": 0},
                {"description": "ok", "amount": "12.00", "quantity": 1.5},
                "not an object",
            ],
        },
    )
    errors = assert_http_error(resp, 422, "validation_error")
    assert resp.json()["message"] == "Validation Exception"
    assert set(errors) == {
        "customer_id",
        "currency",
        "due_date",
        "line_items[0].description",
        "line_items[0].amount",
        "line_items[0].quantity",
        "line_items[1].amount",
        "line_items[1].quantity",
        "line_items[2]",
    }
    empty = assert_http_error(api.post("/invoices", json={}), 422, "validation_error")
    assert {"customer_id", "currency", "line_items"} <= set(empty)
    customer = sb.customers()[0]["id"]
    no_lines = api.post("/invoices", json=new_invoice(customer_id=customer, line_items=[]))
    assert set(assert_http_error(no_lines, 422, "validation_error")) == {"line_items"}
    assert_http_error(api.post("/invoices", content=b"{not json"), 400, "bad_request")
    assert_http_error(api.post("/invoices", json=[1, 2]), 400, "bad_request")
    assert len(sb.invoices()) == count


# -- request log ----------------------------------------------------------------------------------------


def test_request_log(sb: Sandbox, api: httpx.Client) -> None:
    sb.clear_log()
    api.get("/invoices", params={"status": "open", "limit": "2"})
    api.post("/invoices", json={"x": 1})
    records = sb.requests()
    assert [r.method for r in records] == ["GET", "POST"]
    get, post = records
    assert isinstance(get, RequestRecord)
    assert get.query == {"status": "open", "limit": "2"} and get.raw_query == "status=open&limit=2"
    assert get.auth == "bearer" and get.token == sb.issued_tokens[0] and get.status == 200
    assert post.body == b'{"x":1}' and post.status == 422
    assert get.t <= post.t <= time.monotonic()
    assert sb.requests("post") == [post] and sb.requests(path_prefix="/invoices") == records
    assert sb.requests(path_prefix="/customers") == []


# -- faults -------------------------------------------------------------------------------------------------


def test_drop_is_a_transport_error(sb: Sandbox, api: httpx.Client) -> None:
    sb.faults.drop_next(1, method="GET", path="/invoices")
    with pytest.raises(httpx.TransportError):
        api.get("/invoices")
    assert api.get("/invoices").status_code == 200  # only the next one
    assert [r.status for r in sb.requests("GET", "/invoices")] == [0, 200]


def test_drop_after_processing_applies_the_create(sb: Sandbox, api: httpx.Client) -> None:
    customer = sb.customers()[1]["id"]
    count = len(sb.invoices())
    sb.faults.drop_next(1, method="POST", path="/invoices", after_processing=True)
    with pytest.raises(httpx.TransportError):
        api.post("/invoices", json=new_invoice(customer_id=customer, memo="dropped"))
    assert len(sb.invoices()) == count + 1 and sb.invoices()[0]["memo"] == "dropped"
    sb.faults.drop_next(1, method="POST", path="/invoices")  # before processing: nothing created
    with pytest.raises(httpx.TransportError):
        api.post("/invoices", json=new_invoice(customer_id=customer))
    assert len(sb.invoices()) == count + 1


def test_malformed_body(sb: Sandbox, api: httpx.Client) -> None:
    sb.faults.malformed_next(1, path="/customers")
    resp = api.get("/customers")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.content)
    assert api.get("/customers").json()["data"]


def test_fail_next(sb: Sandbox, api: httpx.Client, raw: httpx.Client) -> None:
    customer = sb.customers()[0]["id"]
    count = len(sb.invoices())
    sb.faults.fail_next(2, 503, retry_after="7", method="POST", path="/invoices")
    for _ in range(2):
        resp = api.post("/invoices", json=new_invoice(customer_id=customer))
        assert_http_error(resp, 503, "service_unavailable")
        assert resp.headers["retry-after"] == "7"
    assert len(sb.invoices()) == count  # not applied
    assert api.post("/invoices", json=new_invoice(customer_id=customer)).status_code == 201
    # Faults come before auth: the token endpoint can be faulted; custom bodies are passed through.
    sb.faults.fail_next(1, 500, path="/oauth/token", body={"error": "boom"})
    failed = raw.post("/oauth/token", auth=CREDS, data=GRANT)
    assert failed.status_code == 500 and failed.json() == {"error": "boom"}
    assert "retry-after" not in failed.headers
    assert raw.post("/oauth/token", auth=CREDS, data=GRANT).status_code == 200
    assert [r.status for r in sb.requests(path_prefix="/oauth/token")] == [200, 500, 200]


def test_fault_rules_consumed_in_order(sb: Sandbox, api: httpx.Client) -> None:
    sb.faults.fail_next(1, 500, path="/invoices")
    sb.faults.fail_next(1, 502)
    sb.faults.fail_next(1, 504, method="DELETE")
    assert api.get("/customers").status_code == 502  # first rule does not match this path
    assert api.get("/invoices").status_code == 500
    assert api.get("/invoices").status_code == 200
    assert api.delete("/invoices/inv_missing").status_code == 504
    sb.faults.fail_next(3, 500)
    sb.faults.clear()
    assert api.get("/invoices").status_code == 200


def test_delay_next(sb: Sandbox, api: httpx.Client) -> None:
    sb.faults.delay_next(1, 0.2, path="/customers")
    start = time.monotonic()
    resp = api.get("/customers")
    assert resp.status_code == 200 and time.monotonic() - start >= 0.2
    assert sb.faults._rules == []  # the delay was used up by that one request, so the next is not delayed
    assert api.get("/customers").status_code == 200


async def _until(cond: Any) -> None:
    """Until the sandbox's thread has done what `cond` checks: a condition, not a margin."""
    async with asyncio.timeout(30):
        while not cond():  # noqa: ASYNC110 - set by the sandbox thread, no event to await
            await asyncio.sleep(0.01)


def test_held_requests_do_not_block_others(sb: Sandbox) -> None:
    """Requests held upstream leave the server answering others; the log stays complete and in
    arrival order."""

    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=sb.base_url) as client:
            token = (await client.post("/oauth/token", auth=CREDS, data=GRANT)).json()["access_token"]
            client.headers["Authorization"] = f"Bearer {token}"
            hold = sb.faults.hold_next(3, path="/customers")
            slow = [asyncio.create_task(client.get("/customers")) for _ in range(3)]
            await _until(lambda: hold.arrived == 3)
            fast = await asyncio.gather(*(client.get("/invoices?limit=1") for _ in range(12)))
            assert not any(t.done() for t in slow), "answered while held"
            hold.release()
            return [r.status_code for r in [*await asyncio.gather(*slow), *fast]]

    assert asyncio.run(run()) == [200] * 15
    records = sb.requests()
    assert len(records) == 16 and [r.t for r in records] == sorted(r.t for r in records)


def test_clearing_faults_lets_held_requests_go(sb: Sandbox, api: httpx.Client) -> None:
    async def run() -> int:
        hold = sb.faults.hold_next(1, path="/customers")
        held = asyncio.create_task(asyncio.to_thread(api.get, "/customers"))
        await _until(lambda: hold.arrived == 1)
        assert not held.done() and not hold.released
        sb.faults.clear()
        return (await held).status_code

    assert asyncio.run(run()) == 200
    assert api.get("/customers").status_code == 200  # the rule went with the clear


def test_faults_require_testing_mode() -> None:
    quiet = new_sandbox(testing=False, rate_limit=5.0)
    with pytest.raises(RuntimeError):
        _ = quiet.faults


# -- rate limiting --------------------------------------------------------------------------------------------


def replay_bucket(records: list[RequestRecord], rate: float) -> list[bool]:
    """The documented token bucket (capacity = rate, refill rate/s) over the logged arrival times."""
    tokens, last, out = rate, records[0].t, []
    for rec in records:
        tokens = min(rate, tokens + (rec.t - last) * rate)
        last = rec.t
        ok = tokens >= 1 - 1e-9
        tokens -= 1 if ok else 0
        out.append(ok)
    return out


@pytest.mark.slow
def test_rate_limit_burst_and_even_spacing() -> None:
    rate = 5.0
    with (
        new_sandbox(testing=False, rate_limit=rate) as limited,
        httpx.Client(base_url=limited.base_url) as client,
    ):
        burst = [client.post("/oauth/token", auth=CREDS, data=GRANT) for _ in range(10)]
        records = limited.requests()
        assert [r.status for r in records] == [r.status_code for r in burst]
        assert [r.status == 200 for r in records] == replay_bucket(records, rate)
        if records[-1].t - records[0].t < 1 / rate:  # no whole token refilled during the burst
            assert [r.status_code for r in burst] == [200] * 5 + [429] * 5
        limited_resp = burst[-1]
        assert limited_resp.headers["retry-after"] == "1"
        assert assert_http_error(limited_resp, 429, "rate_limited") == {}
        assert limited.token_requests == 10 and len(limited.issued_tokens) == sum(r.status_code == 200 for r in burst)

        # The bucket is now below one token. Requests spaced exactly 1/rate apart (measured on the
        # server's own arrival clock) always pass.
        due = records[-1].t
        for _ in range(3):
            due += 1 / rate
            time.sleep(max(0.0, due - time.monotonic()))
            assert client.get("/customers").status_code == 401  # passed the limiter, then auth
            due = limited.requests()[-1].t


# -- data ------------------------------------------------------------------------------------------------------


def test_seed_data_is_realistic(sb: Sandbox) -> None:
    invoices = sb.invoices()
    customers = {c["id"] for c in sb.customers()}
    assert len(invoices) == 300
    by_age = sorted(invoices, key=lambda inv: (inv["created_at"], inv["id"]))
    assert [inv["invoice_number"] for inv in by_age] == [f"INV-{1001 + i}" for i in range(300)]
    for inv in invoices:
        assert re.fullmatch(r"inv_[A-Za-z0-9]{24}", inv["id"])
        assert inv["customer_id"] in customers and inv["currency"] == "USD"
        assert inv["created_at"] < "2026-11-25" and inv["created_at"] >= "2025-05-25"
        assert 1 <= len(inv["line_items"]) <= 5
        cents = sum(Decimal(str(li["amount"])) * li["quantity"] for li in inv["line_items"])
        assert Decimal(str(inv["total"])) == Decimal(str(inv["sub_total"])) == cents
        assert all(isinstance(li["quantity"], int) and li["quantity"] >= 1 for li in inv["line_items"])
        created = dt.date.fromisoformat(inv["created_at"][:10])
        assert 15 <= (dt.date.fromisoformat(inv["due_date"]) - created).days <= 45
        if inv["status"] == "open":
            assert inv["due_date"] >= TODAY.isoformat()
        if inv["status"] == "overdue":
            assert inv["due_date"] < TODAY.isoformat()
    statuses = [inv["status"] for inv in invoices]
    assert statuses.count("paid") > len(invoices) / 2
    assert 0 < statuses.count("archived") < len(invoices) * 0.08
    assert any("memo" not in inv for inv in invoices) and any("memo" in inv for inv in invoices)
    assert any("last_notification_at" not in inv for inv in invoices)
    assert any({"tax_total", "external_reference"} & set(inv) for inv in invoices)
    per_customer = sorted((sum(inv["customer_id"] == c for inv in invoices) for c in customers), reverse=True)
    assert per_customer[0] > 3 * per_customer[-1]  # skewed


def test_determinism() -> None:
    one = new_sandbox(testing=False, rate_limit=5.0, seed=11)
    two = new_sandbox(testing=False, rate_limit=5.0, seed=11)
    other = new_sandbox(testing=False, rate_limit=5.0, seed=12)
    assert one.invoices() == two.invoices() and one.customers() == two.customers()
    assert one.invoices() != other.invoices()


def test_restart_many_times() -> None:
    sb = new_sandbox(testing=False, invoices=10)
    urls = set()
    for _ in range(3):
        url = sb.start()
        urls.add(url)
        with httpx.Client(base_url=url) as client:
            assert client.post("/oauth/token", auth=CREDS, data=GRANT).status_code == 200
        sb.stop()
        with pytest.raises(httpx.ConnectError), httpx.Client(base_url=url) as client:
            client.get("/invoices")
    assert len(sb.requests("POST", "/oauth/token")) == 3


@pytest.mark.slow
def test_100k_invoices() -> None:
    start = time.monotonic()
    with (
        new_sandbox(testing=False, invoices=100_000) as big,
        httpx.Client(base_url=big.base_url) as client,
    ):
        generated = time.monotonic() - start
        token = client.post("/oauth/token", auth=CREDS, data=GRANT).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        p1 = client.get("/invoices").json()
        p2 = client.get("/invoices", params={"after": p1["end_cursor"]}).json()
        assert len(p1["data"]) == len(p2["data"]) == 100 and p2["has_next_page"]
        assert p1["data"][0]["invoice_number"] == "INV-101000"
        assert client.get("/invoices", params={"before": p2["start_cursor"]}).json()["data"] == p1["data"]
        deep = client.get("/invoices", params={"status": "draft", "limit": 100}).json()
        assert deep["data"] and all(inv["status"] == "draft" for inv in deep["data"])
    assert generated < 60  # ~1 s normally; a generous guard against accidental quadratic generation


def test_responses_tell_the_simulated_time_in_one_date_header(raw: httpx.Client, sb: Sandbox) -> None:
    resp = raw.get("/invoices")
    assert resp.headers.get_list("date") and len(resp.headers.get_list("date")) == 1
    told = email.utils.parsedate_to_datetime(resp.headers["date"])
    assert told.date() == TODAY == sb.today()
    assert dt.time(11, 59) <= told.time() < dt.time(13)  # a fixed day starts at noon: no midnight in a run
