"""``invoice-mcp check``: is the configuration good enough to serve?

Validates the settings, mints an access token and reads the first page of
invoices, then prints one verdict: ``OK`` with the environment, base URL and how
many invoices the first page shows, or ``FAILED`` with the reason. Neither the
client secret nor the access token is ever printed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

import anyio

from invoice_mcp.api.errors import APIError, CredentialsError, UpstreamError
from invoice_mcp.api.models import PAGE_SIZE
from invoice_mcp.api.settings import Settings, SettingsError, load_settings
from invoice_mcp.server.accounts import Accounts


async def probe(settings: Settings) -> str:
    """Mint a token and list one page; returns the OK line or raises APIError."""
    accounts = Accounts(settings)
    try:
        async with accounts.client(settings, max_attempts=2) as client:
            page = await client.list_invoices(limit=PAGE_SIZE)
    finally:
        await accounts.aclose()
    n = len(page.data)
    more = " (more pages follow)" if page.has_next_page else ""
    return (
        f"OK: the API at {settings.base_url} ({settings.environment} environment) accepted client id "
        f"{settings.client_id!r}; "
        f"{n} invoice{'' if n == 1 else 's'} visible on the first page{more}."
    )


def _reason(exc: APIError, settings: Settings) -> str:
    if isinstance(exc, CredentialsError):
        return exc.message
    if isinstance(exc, UpstreamError) and "cannot reach" in exc.message:
        return (
            f"{exc.message}: nothing answered at {settings.base_url}. Check AP_BASE_URL / AP_ENVIRONMENT "
            "and your network."
        )
    return exc.message


def run_check(env: Mapping[str, str] | None = None, out: TextIO = sys.stdout) -> int:
    try:
        settings = load_settings(env)
    except SettingsError as exc:
        print(f"FAILED: {exc}", file=out)
        return 1
    secrets = [settings.client_secret.get_secret_value()]
    try:
        line = anyio.run(probe, settings)
    except APIError as exc:
        reason = _reason(exc, settings)
        for s in secrets:
            reason = reason.replace(s, "***")
        print(f"FAILED: API at {settings.base_url} ({settings.environment} environment): {reason}", file=out)
        return 1
    print(line, file=out)
    return 0
