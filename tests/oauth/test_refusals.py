"""What the authorization and resource server refuse, each over real HTTP."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from mcp.shared.exceptions import MCPError

from invoice_mcp.faces.oauth.store import MemoryGrantStore
from invoice_mcp.sandbox import Sandbox
from tests.conftest import text_of
from tests.oauth.harness import (
    CALLBACK,
    INIT,
    authorize_params,
    challenge,
    connect,
    exchange,
    form_fields,
    http_client,
    mcp_post,
    refresh,
    register,
    serve_oauth,
    session,
    tokens_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def key(sb: Sandbox) -> tuple[str, str]:
    return sb.config.client_id, sb.config.client_secret


async def test_unauthenticated_request_gets_401_pointing_to_metadata(sandbox: Sandbox) -> None:
    with serve_oauth(sandbox) as server:
        async with http_client() as http:
            resp = await mcp_post(http, server, None)
            assert resp.status_code == 401
            www = resp.headers["www-authenticate"]
            assert www.startswith("Bearer ")
            assert f'resource_metadata="{server.base}/.well-known/oauth-protected-resource/mcp"' in www
            bad = await mcp_post(http, server, "imcp_at_not-a-token")
            assert bad.status_code == 401
            for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
                prm = (await http.get(server.base + path)).json()
                assert prm["resource"] == server.url
                assert prm["authorization_servers"] == [server.base]
                assert prm["scopes_supported"] == ["invoices:read", "invoices:write"]
            meta = (await http.get(server.base + "/.well-known/oauth-authorization-server")).json()
            assert meta["issuer"] == server.base
            assert meta["code_challenge_methods_supported"] == ["S256"]
            assert meta["client_id_metadata_document_supported"] is True
            assert meta["registration_endpoint"] == server.base + "/register"
            assert meta["revocation_endpoint"] == server.base + "/revoke"


async def test_token_works_and_is_never_sent_upstream(sandbox: Sandbox) -> None:
    with serve_oauth(sandbox) as server:
        async with http_client() as http:
            _, tokens = await tokens_for(http, server, key(sandbox))
        sandbox.clear_log()
        async with session(server, tokens["access_token"]) as client:
            result = await client.call_tool("list_invoices", {"limit": 2})
            assert not result.is_error, text_of(result)
        upstream = sandbox.requests()
        assert upstream and all(r.auth == "bearer" for r in upstream)
        for entry in upstream:
            assert entry.token not in (tokens["access_token"], tokens["refresh_token"])
            assert tokens["access_token"] not in repr(entry)


async def test_pkce_plain_or_missing_refused(sandbox: Sandbox) -> None:
    with serve_oauth(sandbox) as server:
        async with http_client() as http:
            client_id = await register(http, server.base)
            for over in ({"code_challenge_method": "plain", "code_challenge": "x" * 43}, {"code_challenge": None}):
                resp = await http.get(server.base + "/authorize", params=authorize_params(server, client_id, **over))
                assert resp.status_code == 302
                query = parse_qs(urlsplit(resp.headers["location"]).query)
                assert query["error"] == ["invalid_request"], query
                assert "/connect" not in resp.headers["location"]


async def test_wrong_verifier_and_code_reuse(sandbox: Sandbox) -> None:
    store = MemoryGrantStore()
    with serve_oauth(sandbox, store) as server:
        async with http_client() as http:
            client_id = await register(http, server.base)
            code = await connect(http, server, client_id, key(sandbox))
            wrong = await exchange(http, server, client_id, code, verifier="w" * 64)
            assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
            first = await exchange(http, server, client_id, code)
            assert first.status_code == 200
            again = await exchange(http, server, client_id, code)
            assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
            # a reused code revokes what it granted
            assert (await mcp_post(http, server, first.json()["access_token"])).status_code == 401
            assert all(not g.active for g in store.grants.values())


async def test_redirect_uri_mismatch_and_open_redirect(sandbox: Sandbox) -> None:
    with serve_oauth(sandbox) as server:
        async with http_client() as http:
            client_id = await register(http, server.base)
            for evil in ("https://evil.example/cb", "http://127.0.0.1:53682/other"):
                resp = await http.get(
                    server.base + "/authorize", params=authorize_params(server, client_id, redirect_uri=evil)
                )
                assert resp.status_code == 400, resp.headers  # shown, never redirected
                assert "location" not in resp.headers
            # RFC 8252: a loopback redirect may come back on another port
            other_port = "http://127.0.0.1:40001/callback"
            code = await connect(
                http,
                server,
                client_id,
                (sandbox.config.client_id, sandbox.config.client_secret),
                redirect_uri=other_port,
            )
            mismatch = await exchange(http, server, client_id, code)  # token request names the registered one
            assert mismatch.status_code == 400 and mismatch.json()["error"] == "invalid_request"
            ok = await exchange(http, server, client_id, code, redirect_uri=other_port)
            assert ok.status_code == 200


async def test_foreign_resource_refused_at_authorize_and_at_the_resource(sandbox: Sandbox) -> None:
    store = MemoryGrantStore()
    with serve_oauth(sandbox, store) as a, serve_oauth(sandbox, store, host="localhost") as b:
        async with http_client() as http:
            client_id = await register(http, a.base)
            resp = await http.get(
                a.base + "/authorize", params=authorize_params(a, client_id, resource="https://other.example/mcp")
            )
            assert parse_qs(urlsplit(resp.headers["location"]).query)["error"] == ["invalid_target"]
            _, tokens = await tokens_for(http, a, key(sandbox))
            assert (await mcp_post(http, a, tokens["access_token"])).status_code == 200
            # the same store, another resource URL: a token for a's /mcp is not one for b's
            assert (await mcp_post(http, b, tokens["access_token"])).status_code == 401


async def test_expired_token_refused(sandbox: Sandbox) -> None:
    now = [1_000_000.0]
    with serve_oauth(sandbox, access_ttl_s=60, clock=lambda: now[0]) as server:
        async with http_client() as http:
            client_id, tokens = await tokens_for(http, server, key(sandbox))
            assert tokens["expires_in"] == 60
            assert (await mcp_post(http, server, tokens["access_token"])).status_code == 200
            now[0] += 61
            assert (await mcp_post(http, server, tokens["access_token"])).status_code == 401
            fresh = await refresh(http, server, client_id, tokens["refresh_token"])
            assert fresh.status_code == 200
            assert (await mcp_post(http, server, fresh.json()["access_token"])).status_code == 200


async def test_refresh_rotates_and_a_replay_revokes_the_grant(sandbox: Sandbox) -> None:
    with serve_oauth(sandbox) as server:
        async with http_client() as http:
            client_id, tokens = await tokens_for(http, server, key(sandbox))
            second = await refresh(http, server, client_id, tokens["refresh_token"])
            assert second.status_code == 200
            rotated = second.json()
            assert rotated["refresh_token"] != tokens["refresh_token"]
            assert rotated["access_token"] != tokens["access_token"]
            assert (await mcp_post(http, server, rotated["access_token"])).status_code == 200
            replay = await refresh(http, server, client_id, tokens["refresh_token"])
            assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
            # the whole grant is dead: the newest access and refresh tokens too
            assert (await mcp_post(http, server, rotated["access_token"])).status_code == 401
            assert (await refresh(http, server, client_id, rotated["refresh_token"])).status_code == 400


async def test_revocation_ends_access_at_once(sandbox: Sandbox) -> None:
    with serve_oauth(sandbox) as server:
        async with http_client() as http:
            client_id, tokens = await tokens_for(http, server, key(sandbox))
            assert (await mcp_post(http, server, tokens["access_token"])).status_code == 200
            resp = await http.post(
                server.base + "/revoke",
                data={"token": tokens["access_token"], "client_id": client_id, "client_secret": ""},
            )
            assert resp.status_code == 200
            assert (await mcp_post(http, server, tokens["access_token"])).status_code == 401
            assert (await refresh(http, server, client_id, tokens["refresh_token"])).status_code == 400


async def _connect_page(http: Any, server: Any, client_id: str) -> tuple[str, dict[str, str]]:
    resp = await http.get(server.base + "/authorize", params=authorize_params(server, client_id))
    page = await http.get(resp.headers["location"])
    return page.text, {k: html.unescape(v) for k, v in form_fields(page.text).items()}


async def test_connect_page_refuses_a_post_without_csrf_token(sandbox: Sandbox) -> None:
    store = MemoryGrantStore()
    with serve_oauth(sandbox, store) as server:
        async with http_client() as http:
            client_id = await register(http, server.base)
            _, fields = await _connect_page(http, server, client_id)
            good = {
                "ap_client_id": sandbox.config.client_id,
                "ap_client_secret": sandbox.config.client_secret,
                "ap_environment": "demo",
                "action": "approve",
            }
            no_token = await http.post(server.base + "/connect", data={"txn": fields["txn"], **good})
            assert no_token.status_code == 403
            http.cookies.clear()  # a cross-site post carries no same-site cookie
            no_cookie = await http.post(server.base + "/connect", data={**fields, **good})
            assert no_cookie.status_code == 403
            assert "did not come from this page" in no_cookie.text
        assert store.grants == {} and store.codes == {}


async def test_connect_page_headers_and_wrong_key(sandbox: Sandbox) -> None:
    store = MemoryGrantStore()
    with serve_oauth(sandbox, store) as server:
        async with http_client() as http:
            client_id = await register(http, server.base)
            resp = await http.get(server.base + "/authorize", params=authorize_params(server, client_id))
            page = await http.get(resp.headers["location"])
            csp = page.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["cache-control"] == "no-store"
            assert "http://" not in page.text.split("<form", 1)[0].replace(CALLBACK, "")  # nothing loaded from anywhere
            fields = {k: html.unescape(v) for k, v in form_fields(page.text).items()}
            wrong = await http.post(
                server.base + "/connect",
                data={
                    **fields,
                    "ap_client_id": sandbox.config.client_id,
                    "ap_client_secret": "not-the-secret-42",
                    "ap_environment": "demo",
                    "action": "approve",
                },
            )
            assert wrong.status_code == 400
            assert "did not accept this client ID and secret" in wrong.text
            assert "not-the-secret-42" not in wrong.text
            assert store.grants == {}
            denied = await http.post(server.base + "/connect", data={**fields, "action": "deny"})
            assert denied.status_code == 303
            query = parse_qs(urlsplit(denied.headers["location"]).query)
            assert query["error"] == ["access_denied"] and query["state"] == ["st4te"]
            assert store.grants == {}


async def test_read_scope_lists_read_tools_and_gets_403_for_writes(sandbox: Sandbox) -> None:
    with serve_oauth(sandbox) as server:
        async with http_client() as http:
            _, tokens = await tokens_for(http, server, key(sandbox), allow_write=False)
            assert tokens["scope"] == "invoices:read"
            call = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "create_invoice", "arguments": {}},
            }
            resp = await mcp_post(http, server, tokens["access_token"], call)
            assert resp.status_code == 403
            www = resp.headers["www-authenticate"]
            assert 'error="insufficient_scope"' in www and 'scope="invoices:write"' in www
            assert "resource_metadata=" in www
        async with session(server, tokens["access_token"]) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "list_invoices" in names
            assert not names & {"create_invoice", "archive_invoice", "restore_invoice"}
            result = await client.call_tool("list_invoices", {"limit": 1})
            assert not result.is_error


async def test_one_users_cursor_is_refused_for_another(sandbox: Sandbox) -> None:
    other = sandbox.config.tenants[0]
    with serve_oauth(sandbox) as server:
        async with http_client() as http:
            _, a = await tokens_for(http, server, key(sandbox))
            _, b = await tokens_for(http, server, (other.client_id, other.client_secret))
        async with session(server, a["access_token"]) as client:
            first = await client.call_tool("list_invoices", {"limit": 2})
            cursor = first.structured_content["next_cursor"]
        async with session(server, b["access_token"]) as client:
            stolen = await client.call_tool("list_invoices", {"cursor": cursor})
            assert stolen.is_error
            mine = await client.call_tool("list_invoices", {"limit": 2})
            assert not mine.is_error
            assert text_of(mine) != text_of(first)


async def test_one_users_confirmation_is_refused_for_another(sandbox: Sandbox) -> None:
    from mcp.types import ElicitResult, InputRequiredResult

    other = sandbox.config.tenants[0]

    async def decline(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="decline")

    target = sandbox.invoices(include_archived=False)[0]["id"]
    args = {"invoice": target}
    with serve_oauth(sandbox) as server:
        async with http_client() as http:
            _, a = await tokens_for(http, server, key(sandbox))
            _, b = await tokens_for(http, server, (other.client_id, other.client_secret))
        async with session(server, a["access_token"], elicitation_callback=decline) as client_a:
            asked = await client_a.session.call_tool("archive_invoice", args, allow_input_required=True)
            assert isinstance(asked, InputRequiredResult) and asked.request_state
        answers = {k: ElicitResult(action="accept", content={"ok": True}) for k in asked.input_requests or {}}
        async with session(server, b["access_token"], elicitation_callback=decline) as client_b:
            # the SDK binds sealed request state to the token's principal (the grant)
            with pytest.raises(MCPError, match="Invalid or expired requestState"):
                await client_b.session.call_tool(
                    "archive_invoice", args, input_responses=answers, request_state=asked.request_state
                )
        assert sandbox.requests(method="DELETE") == []
        async with session(server, a["access_token"], elicitation_callback=decline) as client_a:
            own = await client_a.session.call_tool(
                "archive_invoice", args, input_responses=answers, request_state=asked.request_state
            )
            assert not own.is_error  # the same state is good for the grant it was made for
    assert [r.path for r in sandbox.requests(method="DELETE")] == [f"/invoices/{target}"]


def test_init_body_is_an_initialize() -> None:
    assert INIT["method"] == "initialize" and challenge("a") != challenge("b")


async def test_two_grants_for_one_key_share_its_api_token_and_limiter(sandbox: Sandbox) -> None:
    with serve_oauth(sandbox) as server:
        sandbox.clear_log()
        async with http_client() as http:
            _, a = await tokens_for(http, server, key(sandbox))
            _, b = await tokens_for(http, server, key(sandbox))
        assert a["access_token"] != b["access_token"]
        for token in (a["access_token"], b["access_token"]):
            async with session(server, token) as client:
                assert not (await client.call_tool("list_invoices", {"limit": 1})).is_error
        assert sandbox.token_requests == 1  # minted once on the connect page, reused by both grants
        tenants = server.setup.tenants
        assert len(tenants) == 1
        creds = tenants.credentials(sandbox.config.client_id, sandbox.config.client_secret, "demo")
        assert tenants.limiter(creds) is not None


async def test_resources_prompts_and_completions_act_on_the_grant(sandbox: Sandbox) -> None:
    other = sandbox.config.tenants[0]
    with serve_oauth(sandbox) as server:
        async with http_client() as http:
            _, b = await tokens_for(http, server, (other.client_id, other.client_secret))
        mine = sandbox.invoices(include_archived=False, tenant=other.client_id)[0]["invoice_number"]
        not_mine = sandbox.invoices(include_archived=False)[0]["invoice_number"]
        assert mine != not_mine
        async with session(server, b["access_token"]) as client:
            res = await client.read_resource(f"invoice://{mine}")
            assert mine in res.contents[0].text  # type: ignore[union-attr]
            with pytest.raises(MCPError):
                await client.read_resource(f"invoice://{not_mine}")  # the other account's invoice
            assert (await client.list_prompts()).prompts


async def test_no_code_token_or_key_in_the_servers_logs(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    with serve_oauth(sandbox) as server:
        async with http_client() as http:
            client_id, tokens = await tokens_for(http, server, key(sandbox))
            fresh = (await refresh(http, server, client_id, tokens["refresh_token"])).json()
            async with session(server, fresh["access_token"]) as client:
                assert not (await client.call_tool("list_invoices", {"limit": 1})).is_error
            await refresh(http, server, client_id, tokens["refresh_token"])  # a replay, logged as such
    server_side = [
        r.getMessage() for r in caplog.records if r.name.startswith(("invoice_mcp", "mcp.server", "uvicorn"))
    ]
    text = "\n".join(server_side)
    assert "grant" in text and "replayed" in text  # the server did log what happened
    for marker in ("imcp_at_", "imcp_rt_", "imcp_ac_", sandbox.config.client_secret):
        assert marker not in text
