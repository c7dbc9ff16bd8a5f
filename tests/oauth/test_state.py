"""Grants at rest, on SQLite and on Postgres: a restart keeps them, a replica on the same
store accepts the other's tokens, the operator's revoke reaches every replica within the
verification window, and the database holds no API secret or token in clear."""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import subprocess
from pathlib import Path

import anyio
import pytest

from invoice_mcp.faces.oauth.config import VERIFY_CACHE_S
from invoice_mcp.faces.oauth.setup import run_grants
from invoice_mcp.sandbox import Sandbox
from invoice_mcp.state import open_store
from invoice_mcp.state.grants import SCHEMA, SQLGrantStore
from tests.conftest import text_of
from tests.oauth.harness import http_client, mcp_post, refresh, serve_oauth, session, tokens_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def grants(action: str, url: str, out: io.StringIO | None = None, **kw: object) -> int:
    """`invoice-mcp grants ...` as the CLI runs it (blocking, so in a worker thread)."""
    return await anyio.to_thread.run_sync(run_grants, action, url, argparse.Namespace(**kw), out or io.StringIO())


def _store(url: str) -> SQLGrantStore:
    return SQLGrantStore(open_store(url, schemas=[SCHEMA]))


def _dump(url: str) -> bytes:
    """Everything the database holds, as an attacker with the file or a dump would see it."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite://"))
        return b"".join(Path(p).read_bytes() for p in glob.glob(f"{path}*") if not p.endswith(".key"))
    pg_dump = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))[-1]
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    return subprocess.run([pg_dump, "--data-only", url], env=env, check=True, capture_output=True).stdout


async def test_restart_replica_and_nothing_in_clear(sandbox: Sandbox, state_url: str) -> None:
    key = (sandbox.config.client_id, sandbox.config.client_secret)
    first = _store(state_url)
    with serve_oauth(sandbox, first) as a:
        async with http_client() as http:
            client_id, tokens = await tokens_for(http, a, key)
            assert (await mcp_post(http, a, tokens["access_token"])).status_code == 200
            # a second replica on the same store, behind the same public URL
            with serve_oauth(sandbox, _store(state_url), public=a.setup.config.public_url) as b:
                async with session(b, tokens["access_token"]) as client:
                    result = await client.call_tool("list_invoices", {"limit": 2})
                    assert not result.is_error, text_of(result)
                rotated = await refresh(http, b, client_id, tokens["refresh_token"])
                assert rotated.status_code == 200
                new = rotated.json()
    await first.aclose()
    # a restart: a new process on the same store still knows the grant
    with serve_oauth(sandbox, _store(state_url)) as c:
        async with http_client() as http:
            assert (await mcp_post(http, c, new["access_token"])).status_code == 401  # c's URL is another resource
    with serve_oauth(sandbox, _store(state_url), public=a.setup.config.public_url) as d:
        async with session(d, new["access_token"]) as client:
            assert not (await client.call_tool("summarize_invoices", {})).is_error
    dump = _dump(state_url)
    assert b"oauth_grants" in dump or dump  # the dump is real
    for secret in (sandbox.config.client_secret, tokens["access_token"], tokens["refresh_token"], new["access_token"]):
        assert secret.encode() not in dump
    assert sandbox.config.client_id.encode() in dump  # the client id is not a secret: the grant lists it


async def test_operator_revoke_reaches_every_replica(sandbox: Sandbox, state_url: str) -> None:
    key = (sandbox.config.client_id, sandbox.config.client_secret)
    now = [5_000_000.0]
    with serve_oauth(sandbox, _store(state_url), clock=lambda: now[0]) as a:
        async with http_client() as http:
            _, tokens = await tokens_for(http, a, key)
            assert (await mcp_post(http, a, tokens["access_token"])).status_code == 200
            out = io.StringIO()
            assert await grants("list", state_url, out, json=False) == 0
            line = out.getvalue().splitlines()[0]
            grant_id = line.split()[0]
            assert grant_id.startswith("g_") and "active" in line and "invoices:read invoices:write" in line
            out = io.StringIO()
            assert await grants("list", state_url, out, json=True) == 0
            listed = json.loads(out.getvalue())
            assert listed[0]["id"] == grant_id and "ap_secret_enc" not in listed[0]
            assert sandbox.config.client_secret not in out.getvalue()
            # another process revokes it (the CLI)
            out = io.StringIO()
            assert await grants("revoke", state_url, out, grant_id=grant_id) == 0
            assert await grants("revoke", state_url, grant_id=grant_id) == 1
            now[0] += VERIFY_CACHE_S + 0.01
            assert VERIFY_CACHE_S + 0.01 < 5  # the bound for every replica
            assert (await mcp_post(http, a, tokens["access_token"])).status_code == 401
            out = io.StringIO()
            await grants("list", state_url, out, json=False)
            assert "revoked" in out.getvalue() and "revoked by the operator" in out.getvalue()
