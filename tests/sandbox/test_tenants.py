"""Several partner accounts in one sandbox, over real HTTP: isolated data, credentials, rate limits, log."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from invoice_mcp.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox, TenantConfig

from ..conftest import new_sandbox

GRANT = {"grant_type": "client_credentials"}
A = (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
B = ("sandbox-client-id-1", "sandbox-client-secret-1")
FORBIDDEN = {"code": "forbidden", "message": "Invalid credentials", "validation_errors": {}}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with new_sandbox(tenants=(TenantConfig.numbered(1),)) as sb:
        yield sb


@contextlib.contextmanager
def client_for(sb: Sandbox, creds: tuple[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.base_url) as client:
        resp = client.post("/oauth/token", auth=creds, data=GRANT)
        assert resp.status_code == 200, resp.text
        client.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        yield client


def walk(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query = dict(params)
    while True:
        page = client.get(path, params=query).json()
        items += page["data"]
        if not page["has_next_page"]:
            return items
        query["after"] = page["end_cursor"]


def test_numbered_tenant_credentials() -> None:
    assert TenantConfig.numbered(1) == TenantConfig(*B)
    assert TenantConfig.numbered(3).client_id == "sandbox-client-id-3"
    with pytest.raises(ValueError):
        TenantConfig.numbered(0)
    with pytest.raises(ValueError, match="duplicate"):
        new_sandbox(testing=False, rate_limit=5.0, tenants=(TenantConfig(DEMO_CLIENT_ID, "other"),))


def test_default_tenant_data_is_unchanged_by_extra_tenants(sb: Sandbox) -> None:
    alone = new_sandbox(testing=False, rate_limit=5.0)
    assert sb.tenants == [DEMO_CLIENT_ID, B[0]]
    assert sb.invoices() == sb.invoices(tenant=DEMO_CLIENT_ID) == alone.invoices()
    assert sb.customers() == alone.customers() and sb.payments() == alone.payments()


def test_second_tenant_data_is_visibly_different(sb: Sandbox) -> None:
    names_a = {c["name"] for c in sb.customers()}
    names_b = {c["name"] for c in sb.customers(tenant=B[0])}
    assert len(names_b) == 12 and not names_a & names_b
    assert not {w for n in names_a for w in n.split()} & {w for n in names_b for w in n.split()}
    numbers_b = sorted(int(i["invoice_number"].removeprefix("INV-")) for i in sb.invoices(tenant=B[0]))
    assert numbers_b == list(range(1_001_001, 1_001_001 + 300))
    ids_a = {i["id"] for i in sb.invoices()} | {c["id"] for c in sb.customers()} | {p["id"] for p in sb.payments()}
    ids_b = {i["id"] for i in sb.invoices(tenant=B[0])} | {p["id"] for p in sb.payments(tenant=B[0])}
    assert not ids_a & ids_b
    third = new_sandbox(
        testing=False, rate_limit=5.0, invoices=5, tenants=(TenantConfig.numbered(1), TenantConfig.numbered(2))
    )
    names_3 = {c["name"] for c in third.customers(tenant="sandbox-client-id-2")}
    assert not names_3 & names_b and not names_3 & names_a
    with pytest.raises(KeyError):
        sb.invoices(tenant="nobody")


def test_each_token_sees_only_its_tenant(sb: Sandbox) -> None:
    with client_for(sb, A) as a, client_for(sb, B) as b:
        filters = {"/invoices": {"status": "paid"}, "/customers": {}, "/payments": {"status": "succeeded"}}
        for path, filtered in filters.items():
            for params in ({}, {"limit": 50}, filtered):
                page_a, page_b = a.get(path, params=params).json(), b.get(path, params=params).json()
                assert page_a["data"] and page_b["data"]
                assert not {x["id"] for x in page_a["data"]} & {x["id"] for x in page_b["data"]}
        assert walk(a, "/invoices") == sb.invoices(include_archived=False)
        assert walk(b, "/invoices") == sb.invoices(include_archived=False, tenant=B[0])
        assert walk(b, "/payments") == sb.payments(tenant=B[0])

        inv_a = sb.invoices()[0]
        pay_a = sb.payments()[0]
        cus_a = sb.customers()[0]
        assert a.get(f"/invoices/{inv_a['id']}").status_code == 200
        assert b.get(f"/invoices/{inv_a['id']}").status_code == 404
        assert b.get(f"/payments/{pay_a['id']}").status_code == 404
        assert b.get(f"/customers/{cus_a['id']}").status_code == 404
        assert b.get("/invoices", params={"customer_id": cus_a["id"]}).json()["data"] == []
        assert b.get("/invoices", params={"invoice_number": inv_a["invoice_number"]}).json()["data"] == []
        assert b.get("/payments", params={"invoice_id": inv_a["id"]}).json()["data"] == []
        assert b.delete(f"/invoices/{inv_a['id']}").status_code == 404
        body = {
            "customer_id": cus_a["id"],
            "currency": "USD",
            "line_items": [{"description": "x", "amount": 1, "quantity": 1}],
        }
        refused = b.post("/invoices", json=body)
        assert refused.status_code == 422 and refused.json()["validation_errors"] == {
            "customer_id": "customer not found"
        }

        cus_b = sb.customers(tenant=B[0])[0]["id"]
        created = b.post("/invoices", json={**body, "customer_id": cus_b}).json()
        assert created["invoice_number"] == "INV-1001301"
        assert sb.invoices(tenant=B[0])[0]["id"] == created["id"]
        assert created["id"] not in {i["id"] for i in sb.invoices()}
        assert a.get(f"/invoices/{created['id']}").status_code == 404


def test_wrong_secret_for_a_known_client_is_refused(sb: Sandbox) -> None:
    with client_for(sb, A) as a, httpx.Client(base_url=sb.base_url) as raw:
        for creds in ((A[0], B[1]), (B[0], A[1]), (B[0], "nope"), ("unknown", B[1])):
            resp = raw.post("/oauth/token", auth=creds, data=GRANT)
            assert resp.status_code == 403 and resp.json() == FORBIDDEN
        assert a.get("/invoices").status_code == 200  # the cached token of that client still works
        assert len(sb.issued_tokens) == 1
        tokens = sb.requests("POST", "/oauth/token")
        assert [r.tenant for r in tokens] == [A[0], A[0], B[0], B[0], None]
        assert [r.status for r in tokens] == [200, 403, 403, 403, 403]
        assert sb.token_requests_for(A[0]) == 2 and sb.token_requests_for(B[0]) == 2
        assert sb.token_requests == 5


def test_request_log_attributes_every_request(sb: Sandbox) -> None:
    with client_for(sb, A) as a, client_for(sb, B) as b, httpx.Client(base_url=sb.base_url) as raw:
        for _ in range(3):
            a.get("/invoices")
        b.get("/payments")
        raw.get("/invoices")
        raw.get("/invoices", headers={"Authorization": "Bearer " + "0" * 56})
        sb.faults.expire_tokens()  # every tenant's tokens
        assert a.get("/invoices").status_code == 401 and b.get("/invoices").status_code == 401
        assert [(r.path, r.tenant) for r in sb.requests("GET")] == [
            ("/invoices", A[0]),
            ("/invoices", A[0]),
            ("/invoices", A[0]),
            ("/payments", B[0]),
            ("/invoices", None),
            ("/invoices", None),
            ("/invoices", A[0]),  # an expired token is still attributed to its tenant
            ("/invoices", B[0]),
        ]
        assert len(sb.requests(tenant=A[0])) == 5 and len(sb.requests(tenant=B[0])) == 3
        assert sb.token_requests_for(A[0]) == sb.token_requests_for(B[0]) == 1


class FrozenTicker:
    """Arrival clock for the sandbox: time stands still unless a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_is_per_client_id() -> None:
    ticker = FrozenTicker()
    tenants = (TenantConfig.numbered(1),)
    sandbox = new_sandbox(testing=False, rate_limit=5.0, ticker=ticker, tenants=tenants)
    with sandbox as sb, httpx.Client(base_url=sb.base_url) as raw:
        token_a = raw.post("/oauth/token", auth=A, data=GRANT).json()["access_token"]
        token_b = raw.post("/oauth/token", auth=B, data=GRANT).json()["access_token"]
        a = {"Authorization": f"Bearer {token_a}"}
        b = {"Authorization": f"Bearer {token_b}"}
        # With time frozen nothing refills: each key has its own 5, minus its token request.
        assert [raw.get("/invoices", headers=a).status_code for _ in range(6)] == [200] * 4 + [429] * 2
        assert [raw.get("/payments", headers=b).status_code for _ in range(5)] == [200] * 4 + [429]
        assert raw.post("/oauth/token", auth=A, data=GRANT).status_code == 429  # same key, any endpoint
        assert raw.post("/oauth/token", auth=(A[0], "wrong"), data=GRANT).status_code == 429
        assert raw.get("/invoices").status_code == 401  # no key: its own bucket, then auth
        limited = sb.requests(tenant=A[0])[-1]
        assert limited.status == 429
        ticker.now += 0.2  # one token's worth for each key
        assert raw.get("/invoices", headers=a).status_code == 200
        assert raw.get("/invoices", headers=a).status_code == 429
        assert raw.get("/payments", headers=b).status_code == 200
        statuses = [(r.tenant, r.status) for r in sb.requests() if r.status == 429]
        assert statuses == [(A[0], 429)] * 2 + [(B[0], 429)] + [(A[0], 429)] * 3


def test_fifty_tenants_reset_and_isolation() -> None:
    tenants = tuple(dataclasses.replace(TenantConfig.numbered(k), invoices=20, customers=3) for k in range(1, 50))
    with new_sandbox(testing=False, invoices=20, customers=3, tenants=tenants) as sb:
        assert len(sb.tenants) == 50
        seen: set[str] = set()
        for k in (1, 25, 49):
            cid = f"sandbox-client-id-{k}"
            with client_for(sb, (cid, f"sandbox-client-secret-{k}")) as client:
                ids = {i["id"] for i in walk(client, "/invoices")}
                assert ids == {i["id"] for i in sb.invoices(include_archived=False, tenant=cid)}
                assert not ids & seen
                seen |= ids
        before = sb.invoices(tenant="sandbox-client-id-7")
        sb.reset()
        assert sb.invoices(tenant="sandbox-client-id-7") == before and sb.issued_tokens == []
