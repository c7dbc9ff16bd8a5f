"""Shared fixtures: one sandbox per test module over real HTTP, reset per test."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from mcp import Client

from invoice_mcp.sandbox import Sandbox, SandboxConfig
from invoice_mcp.server import build_server
from invoice_mcp.settings import Settings, load_settings

TODAY = datetime.date(2026, 11, 25)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def sandbox_module() -> Iterator[Sandbox]:
    sb = Sandbox(SandboxConfig(testing=True, today=TODAY, rate_limit=None))
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture
def sandbox(sandbox_module: Sandbox) -> Sandbox:
    sandbox_module.reset()
    return sandbox_module


def settings_for(sb: Sandbox, **extra: str) -> Settings:
    env = {
        "AP_CLIENT_ID": sb.config.client_id,
        "AP_CLIENT_SECRET": sb.config.client_secret,
        "AP_BASE_URL": sb.base_url,
        "AP_RATE_LIMIT": "1000",
        "AP_TIMEOUT_S": "5",
        **extra,
    }
    return load_settings(env)


@pytest.fixture
def settings(sandbox: Sandbox) -> Settings:
    return settings_for(sandbox)


@pytest.fixture
async def mcp_client(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings)) as c:
        yield c


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)
