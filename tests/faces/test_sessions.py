"""Session owners (faces/sessions.py) at the unit level: the owner digest, the sealed-state
principal of the modern era, and places freed when the SDK reaps a session."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from mcp.server.auth.provider import AccessToken

from invoice_mcp.faces.sessions import SessionOwners, owner_digest, request_state_principal, short

ID, SECRET, ENV = (
    "x-alternative-payments-client-id",
    "x-alternative-payments-client-secret",
    "x-alternative-payments-environment",
)


def test_owner_is_the_principal_and_in_gateway_mode_the_credentials() -> None:
    a = {ID: "acme", SECRET: "s1"}
    token = AccessToken(token="t", client_id="invoice-mcp-http", scopes=[])
    grant = AccessToken(token="t", client_id="app", scopes=[], subject="user-7", claims={"iss": "https://idp"})
    assert owner_digest(a, token, gateway=True) == owner_digest({**a, ENV: ""}, token, gateway=True)
    assert owner_digest(a, token, gateway=True) != owner_digest({**a, SECRET: "s2"}, token, gateway=True)
    assert owner_digest(a, token, gateway=True) != owner_digest({ID: "bolt", SECRET: "s1"}, token, gateway=True)
    assert owner_digest(a, token, gateway=True) != owner_digest({}, token, gateway=True)
    assert owner_digest(a, token, gateway=False) == owner_digest({}, token, gateway=False)  # one account
    assert owner_digest({}, token, gateway=False) != owner_digest({}, grant, gateway=False)  # a grant owns its own
    assert b"s1" not in owner_digest(a, token, gateway=True)
    assert short("abc") != "abc" and len(short("x" * 43)) < 16


def test_sealed_request_state_is_bound_to_the_owner() -> None:
    principal = request_state_principal(gateway=True)
    ctx_a = SimpleNamespace(request=SimpleNamespace(headers={ID: "acme", SECRET: "s1"}))
    ctx_b = SimpleNamespace(request=SimpleNamespace(headers={ID: "bolt", SECRET: "s1"}))
    assert principal(ctx_a) != principal(ctx_b) and principal(ctx_a) == principal(ctx_a)
    assert principal(SimpleNamespace(request=None)) is None  # stdio, in memory: no caller to tell apart


@pytest.mark.anyio
async def test_reaped_sessions_free_their_owners_place() -> None:
    internal = iter(f"internal-{k}" for k in range(10))
    live: set[str] = set()
    sent: list[dict[str, Any]] = []

    async def sdk(scope: Any, receive: Any, send: Any) -> None:
        sid = next(internal)
        live.add(sid)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"mcp-session-id", sid.encode())]})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    owners = SessionOwners(sdk, gateway=True, per_owner=1, alive=live.__contains__)
    scope = {"type": "http", "method": "POST", "headers": [(ID.encode(), b"acme"), (SECRET.encode(), b"s")]}
    await owners(scope, None, send)
    await owners(scope, None, send)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200, 503]
    given = dict(sent[0]["headers"])[b"mcp-session-id"].decode()
    assert given not in {"internal-0"} and len(given) >= 43
    live.clear()  # the SDK reaped it (idle timeout)
    await owners(scope, None, send)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"][-1] == 200
    assert len(owners) == 1


def test_a_replicable_bind_without_shared_state_warns_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    """Off loopback (a deployment others reach, often behind a load balancer) without
    INVOICE_MCP_REDIS_URL, the duplicate guard cannot see another replica's create in flight."""
    import logging

    from invoice_mcp.api.settings import load_settings
    from invoice_mcp.faces.http import HTTPOptions, check_options

    token = "t" * 40
    base = {"AP_CLIENT_ID": "id", "AP_CLIENT_SECRET": "secret", "INVOICE_MCP_HTTP_TOKEN": token}
    with caplog.at_level(logging.WARNING, logger="invoice_mcp.faces.http"):
        check_options(load_settings(base), HTTPOptions(host="0.0.0.0"))
    assert any("INVOICE_MCP_REDIS_URL" in r.getMessage() and "duplicate" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="invoice_mcp.faces.http"):
        check_options(
            load_settings({**base, "INVOICE_MCP_REDIS_URL": "redis://127.0.0.1:1/0"}), HTTPOptions(host="0.0.0.0")
        )
        check_options(load_settings(base), HTTPOptions(host="127.0.0.1"))
    assert not [r for r in caplog.records if "INVOICE_MCP_REDIS_URL" in r.getMessage()]
