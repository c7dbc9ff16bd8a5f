"""Small pieces of OAuth mode on their own: settings, redirect matching, scope filter, CLI."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from mcp.server.auth.provider import AccessToken
from mcp.shared.exceptions import MCPError
from mcp.types import ListToolsResult, Tool

from invoice_mcp.faces.oauth import accounts
from invoice_mcp.faces.oauth.clients import RegisteredClient, _cache_seconds, check_redirect_uris
from invoice_mcp.faces.oauth.config import OAuthConfigError, load_oauth_config, load_state_key
from tests.procs import run_cli

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def test_public_url_and_settings(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    cfg = load_oauth_config({"INVOICE_MCP_PUBLIC_URL": "https://mcp.example.com/", "INVOICE_MCP_STATE_KEY": key})
    assert cfg.resource == "https://mcp.example.com/mcp" and cfg.issuer == "https://mcp.example.com"
    assert cfg.access_ttl_s == 3600 and cfg.secure_cookies and key not in repr(cfg)
    short = load_oauth_config(
        {"INVOICE_MCP_STATE_KEY": key, "INVOICE_MCP_OAUTH_ACCESS_TTL_S": "30"}, public_url="https://a.example"
    )
    assert short.access_ttl_s == 30
    for env, why in (
        ({}, "needs the public URL"),
        ({"INVOICE_MCP_PUBLIC_URL": "http://mcp.example.com"}, "must be https"),
        ({"INVOICE_MCP_PUBLIC_URL": "http://127.0.0.1:9"}, "must be https"),
        ({"INVOICE_MCP_PUBLIC_URL": "https://mcp.example.com/mcp"}, "origin only"),
        ({"INVOICE_MCP_PUBLIC_URL": "ftp://x"}, "origin such as"),
        ({"INVOICE_MCP_PUBLIC_URL": "https://a.example", "INVOICE_MCP_OAUTH_ACCESS_TTL_S": "soon"}, "whole number"),
        ({"INVOICE_MCP_PUBLIC_URL": "https://a.example", "INVOICE_MCP_STATE_KEY": "short"}, "Fernet key"),
    ):
        with pytest.raises(OAuthConfigError, match=why):
            load_oauth_config({"INVOICE_MCP_STATE_KEY": key, **env}, key_file=tmp_path / "k")
    loop = load_oauth_config(
        {"INVOICE_MCP_PUBLIC_URL": "http://127.0.0.1:9", "INVOICE_MCP_OAUTH_ALLOW_LOOPBACK": "1"},
        key_file=tmp_path / "made.key",
    )
    assert loop.public_url == "http://127.0.0.1:9" and not loop.secure_cookies
    assert (tmp_path / "made.key").stat().st_mode & 0o777 == 0o600
    assert load_state_key({}, tmp_path / "made.key") == loop.state_key  # the same key on the next start
    (tmp_path / "bad.key").write_text("nope")
    with pytest.raises(OAuthConfigError, match="not a Fernet key"):
        load_state_key({}, tmp_path / "bad.key")
    with pytest.raises(OAuthConfigError, match="INVOICE_MCP_STATE_KEY"):
        load_state_key({}, None)  # Postgres: no folder for a key file
    assert load_state_key({"INVOICE_MCP_STATE_KEY": f"{key},{Fernet.generate_key().decode()}"}) == key.encode()


def test_redirect_matching() -> None:
    client = RegisteredClient(
        client_id="c",
        redirect_uris=["https://app.example/cb", "http://127.0.0.1/callback"],  # type: ignore[list-item]
        token_endpoint_auth_method="none",
    )
    from pydantic import AnyUrl

    assert str(client.validate_redirect_uri(AnyUrl("https://app.example/cb"))) == "https://app.example/cb"
    assert client.validate_redirect_uri(AnyUrl("http://127.0.0.1:5000/callback"))  # any loopback port
    from mcp.shared.auth import InvalidRedirectUriError

    for bad in (
        "https://app.example/cb/",
        "https://app.example:444/cb",
        "http://127.0.0.1:5000/other",
        "http://localhost:5000/callback",
        "http://u:p@127.0.0.1:5000/callback",
    ):
        with pytest.raises(InvalidRedirectUriError):
            client.validate_redirect_uri(AnyUrl(bad))
    check_redirect_uris(["https://a.example/cb", "http://[::1]:9/cb", "com.example.app:/cb"])
    for bad_list in ([], ["http://a.example/cb"], ["https://a.example/cb#x"], ["javascript:alert(1)"]):
        with pytest.raises(ValueError):
            check_redirect_uris(bad_list)
    assert _cache_seconds(None) == 300 and _cache_seconds("max-age=10") == 10
    assert _cache_seconds("no-store") == 0 and _cache_seconds("max-age=999999") == 86400
    assert _cache_seconds("public") == 300


async def test_scope_filter_inside_mcp(monkeypatch: pytest.MonkeyPatch) -> None:
    read = AccessToken(token="d", client_id="c", scopes=["invoices:read"], subject="g")
    write = AccessToken(token="d", client_id="c", scopes=["invoices:read", "invoices:write"], subject="g")
    current: list[AccessToken | None] = [read]
    monkeypatch.setattr(accounts, "get_access_token", lambda: current[0])
    tools = [Tool(name=n, input_schema={"type": "object"}) for n in ("list_invoices", "create_invoice")]

    async def listed(ctx: Any) -> Any:
        return ListToolsResult(tools=tools)

    async def wire(ctx: Any) -> Any:
        return {"tools": [{"name": t.name} for t in tools]}

    gate = accounts.ScopeFilter()
    ctx: Any = SimpleNamespace(method="tools/list", params=None, request=None)
    out: Any = await gate(ctx, listed)
    assert [t.name for t in out.tools] == ["list_invoices"]
    assert [t["name"] for t in (await gate(ctx, wire))["tools"]] == ["list_invoices"]  # type: ignore[index]
    call: Any = SimpleNamespace(method="tools/call", params={"name": "create_invoice"}, request=None)
    with pytest.raises(MCPError, match="invoices:write"):
        await gate(call, listed)
    current[0] = write
    assert len((await gate(ctx, listed)).tools) == 2  # type: ignore[union-attr]
    assert await gate(call, wire)


def test_cli_refuses_oauth_without_what_it_needs(tmp_path: Path) -> None:
    r = run_cli(["--transport", "http", "--auth", "oauth", "--state", f"sqlite:///{tmp_path}/s.db"], {}, tmp_path)
    assert r.returncode == 2 and "needs the public URL" in r.stderr
    r = run_cli(["--auth", "oauth"], {}, tmp_path)
    assert r.returncode == 2 and "--transport http" in r.stderr
    r = run_cli(["--transport", "http", "--gateway", "--auth", "oauth"], {}, tmp_path)
    assert r.returncode == 2
    r = run_cli(["--transport", "http"], {"INVOICE_MCP_AUTH": "magic"}, tmp_path)
    assert r.returncode == 2 and "bearer or oauth" in r.stderr
    r = run_cli(
        ["--transport", "http", "--auth", "oauth", "--public-url", "http://mcp.example.com"],
        {"INVOICE_MCP_STATE": f"sqlite:///{tmp_path}/s.db"},
        tmp_path,
    )
    assert r.returncode == 2 and "must be https" in r.stderr
    r = run_cli(["grants", "list", "--state", f"sqlite:///{tmp_path}/s.db"], {}, tmp_path)
    assert r.returncode == 0 and r.stdout == ""
    r = run_cli(["grants", "list", "--json", "--state", f"sqlite:///{tmp_path}/s.db"], {}, tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "[]"
    r = run_cli(["grants", "revoke", "g_nope", "--state", f"sqlite:///{tmp_path}/s.db"], {}, tmp_path)
    assert r.returncode == 1 and "no active grant" in r.stderr
    r = run_cli(["grants", "list", "--state", "mysql://x"], {}, tmp_path)
    assert r.returncode == 2
