"""Streamable HTTP end to end: real server subprocesses against the in-test sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult, InputRequiredResult

from invoice_mcp.sandbox import Sandbox

from .conftest import text_of
from .procs import ALL_TOOLS, HTTPServer, api_env, free_port, http_servers, run_cli

TOKEN = "http-token-4f9c2e7a1b"


@pytest.fixture(scope="module")
def servers(sandbox_module: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, HTTPServer]]:
    env = api_env(sandbox_module)
    cwd = tmp_path_factory.mktemp("http")
    with http_servers(
        (env, ("--allowed-host", "mcp.internal.test", "--allowed-origin", "https://app.internal.test")),
        (env, ()),
        ({**env, "INVOICE_MCP_HTTP_TOKEN": TOKEN}, ()),
        cwd=cwd,
    ) as (a, b, token):
        yield {"a": a, "b": b, "token": token}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.slow
async def test_tools_and_list(servers: dict[str, HTTPServer], sandbox: Sandbox, mode: Any) -> None:
    async with Client(servers["a"].url, mode=mode) as client:
        assert {t.name for t in (await client.list_tools()).tools} == ALL_TOOLS
        r = await client.call_tool("list_invoices", {"limit": 3})
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None and len(r.structured_content["rows"]) == 3
    oracle = [i["invoice_number"] for i in sandbox.invoices(include_archived=False)[:3]]
    assert [row[0] for row in r.structured_content["rows"]] == oracle


@pytest.mark.anyio
async def test_progress_over_http(servers: dict[str, HTTPServer], sandbox: Sandbox) -> None:
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with Client(servers["a"].url) as client:
        r = await client.call_tool("summarize_invoices", {}, progress_callback=on_progress)
    assert not r.is_error, text_of(r)
    assert len(seen) >= 2, seen  # one per page of 100; the sandbox holds 300 invoices
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_declined_archive_sends_nothing(servers: dict[str, HTTPServer], sandbox: Sandbox, mode: Any) -> None:
    asked: list[str] = []

    async def decline(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(getattr(params, "message", ""))
        return ElicitResult(action="decline")

    target = sandbox.invoices(include_archived=False)[0]
    async with Client(servers["a"].url, mode=mode, elicitation_callback=decline) as client:
        r = await client.call_tool("archive_invoice", {"invoice": target["id"]})
    assert not r.is_error, text_of(r)
    assert "Not archived" in text_of(r)
    assert r.structured_content is not None and r.structured_content["outcome"] == "not_archived"
    assert len(asked) == 1 and "Archive invoice" in asked[0]
    assert sandbox.requests(method="DELETE") == []


def test_bearer_token_required(servers: dict[str, HTTPServer]) -> None:
    url = servers["token"].url
    assert httpx.post(url, json={}).status_code == 401
    assert httpx.post(url, json={}, headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert httpx.post(url, json={}, headers={"Authorization": TOKEN}).status_code == 401  # no scheme
    health = httpx.get(servers["token"].base + "/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert TOKEN not in servers["token"].stderr()


@pytest.mark.anyio
async def test_bearer_token_accepted(servers: dict[str, HTTPServer], sandbox: Sandbox) -> None:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
        Client(streamable_http_client(servers["token"].url, http_client=http)) as client,
    ):
        r = await client.call_tool("list_invoices", {"limit": 2})
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None and len(r.structured_content["rows"]) == 2


def test_dns_rebinding_protection(servers: dict[str, HTTPServer]) -> None:
    url = servers["a"].url
    r = httpx.post(url, json={}, headers={"Host": "evil.example.com"})
    assert r.status_code == 421
    r = httpx.post(url, json={}, headers={"Origin": "http://evil.example.com"})
    assert r.status_code == 403
    # --allowed-host / --allowed-origin pass the check (then fail as an empty JSON-RPC body).
    assert httpx.post(url, json={}, headers={"Host": "mcp.internal.test"}).status_code not in (421, 403)
    assert httpx.post(url, json={}, headers={"Origin": "https://app.internal.test"}).status_code not in (421, 403)
    # Loopback names are always allowed.
    assert httpx.post(url, json={}, headers={"Host": f"localhost:{servers['a'].port}"}).status_code != 421


def test_health(servers: dict[str, HTTPServer]) -> None:
    r = httpx.get(servers["b"].base + "/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


@pytest.mark.slow
def test_public_bind_without_token_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    # Refused before binding: the process exits without ever listening on 0.0.0.0.
    port = free_port()
    res = run_cli(["--transport", "http", "--host", "0.0.0.0", "--port", str(port)], api_env(sandbox), tmp_path)
    assert res.returncode == 2, res.stderr
    assert "INVOICE_MCP_HTTP_TOKEN" in res.stderr and "--allow-unauthenticated" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.anyio
@pytest.mark.slow
async def test_cursor_continues_on_another_replica(servers: dict[str, HTTPServer], sandbox: Sandbox) -> None:
    """Chunks alternate between two server processes; the cursor carries all the state."""
    oracle = [i["invoice_number"] for i in sandbox.invoices(include_archived=False)]
    seen: list[str] = []
    async with Client(servers["a"].url) as a, Client(servers["b"].url) as b:
        cursor: str | None = None
        for n in range(200):
            client = (a, b)[n % 2]
            args: dict[str, Any] = {"limit": 7} if cursor is None else {"limit": 7, "cursor": cursor}
            r = await client.call_tool("list_invoices", args)
            assert not r.is_error, text_of(r)
            data = r.structured_content
            assert data is not None
            seen += [row[0] for row in data["rows"]]
            cursor = data.get("next_cursor")
            if cursor is None:
                break
    assert cursor is None
    assert seen == oracle
    assert len(set(seen)) == len(seen)


@pytest.mark.anyio
@pytest.mark.slow
async def test_confirmation_round_trip_across_replicas(servers: dict[str, HTTPServer], sandbox: Sandbox) -> None:
    """The elicitation round trip of 2026-07-28 is stateless: replica A asks, replica B gets the answer
    with A's sealed request_state (both derive the sealing key from the same credentials)."""

    async def decline(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        return ElicitResult(action="decline")

    target = sandbox.invoices(include_archived=False)[0]["id"]
    args = {"invoice": target}
    async with (
        Client(servers["a"].url, elicitation_callback=decline) as a,
        Client(servers["b"].url, elicitation_callback=decline) as b,
    ):
        asked = await a.session.call_tool("archive_invoice", args, allow_input_required=True)
        assert isinstance(asked, InputRequiredResult) and asked.input_requests and asked.request_state
        answers: dict[str, Any] = {
            key: ElicitResult(action="accept", content={"ok": True}) for key in asked.input_requests
        }
        r = await b.session.call_tool(
            "archive_invoice", args, input_responses=answers, request_state=asked.request_state
        )
    assert isinstance(r, CallToolResult) and not r.is_error, r
    assert r.structured_content is not None and r.structured_content["outcome"] == "archived"
    assert [req.path for req in sandbox.requests(method="DELETE")] == [f"/invoices/{target}"]
