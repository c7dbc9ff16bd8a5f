"""What the sandbox's own tests share: each module starts the `sandbox` it needs (its config);
`sb` resets it per test and `api` is an HTTP client carrying a freshly minted bearer token."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from invoice_mcp.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox

CREDS = (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
GRANT = {"grant_type": "client_credentials"}


@pytest.fixture
def sb(sandbox: Sandbox) -> Sandbox:
    sandbox.reset()
    return sandbox


def bearer_client(sb: Sandbox, creds: tuple[str, str] = CREDS) -> httpx.Client:
    """An httpx client for `sb` with a token minted for `creds` (the caller closes it)."""
    client = httpx.Client(base_url=sb.base_url)
    token = client.post("/oauth/token", auth=creds, data=GRANT).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.fixture
def api(sb: Sandbox) -> Iterator[httpx.Client]:
    client = bearer_client(sb)
    try:
        yield client
    finally:
        client.close()
