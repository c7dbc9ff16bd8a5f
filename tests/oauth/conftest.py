"""The sandbox for OAuth tests serves two accounts (the default key and tenant 1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from invoice_mcp.sandbox import Sandbox, SandboxConfig
from invoice_mcp.sandbox.config import TenantConfig
from tests.conftest import TODAY


@pytest.fixture(scope="module")
def sandbox_module() -> Iterator[Sandbox]:
    sb = Sandbox(SandboxConfig(testing=True, today=TODAY, rate_limit=None, tenants=(TenantConfig.numbered(1),)))
    sb.start()
    yield sb
    sb.stop()
