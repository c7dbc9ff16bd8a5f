"""The sandbox for OAuth tests serves two accounts (the default key and tenant 1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.sandbox.config import TenantConfig
from tests.conftest import new_sandbox


@pytest.fixture(scope="module")
def sandbox_module() -> Iterator[Sandbox]:
    sb = new_sandbox(tenants=(TenantConfig.numbered(1),))
    sb.start()
    yield sb
    sb.stop()
