"""Shared fixtures: one sandbox per test module over real HTTP, reset per test; `new_sandbox` for a
test that needs its own; one Redis per module that asks for `redis_url`; one Postgres per run."""

from __future__ import annotations

import datetime
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from mcp import Client

from invoice_mcp.api.settings import Settings, load_settings
from invoice_mcp.sandbox import Sandbox, SandboxConfig
from invoice_mcp.server import build_server

TODAY = datetime.date(2026, 11, 25)

# Nothing the suite runs may write to the developer's own data folder (the default state store
# lives there): point it at a folder of this run.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="invoice-mcp-data-")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def new_sandbox(**config: Any) -> Sandbox:
    """A sandbox (not started) as the suite's tests want one unless they say otherwise: its
    testing hooks on, its data seeded for TODAY, no rate limit. Any SandboxConfig field overrides."""
    return Sandbox(SandboxConfig(**{"testing": True, "today": TODAY, "rate_limit": None, **config}))


@pytest.fixture(scope="module")
def sandbox_module() -> Iterator[Sandbox]:
    sb = new_sandbox()
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
        "INVOICE_MCP_STATE": "sqlite://:memory:",
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


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(record.getMessage())
        except Exception:  # a record that cannot format is not a leak
            self.lines.append(str(record.msg))


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log() -> Iterator[None]:
    """The whole suite runs with DEBUG logging captured; at the end, no access token any
    sandbox issued and no client secret may appear in any log line."""
    from invoice_mcp.sandbox import DEMO_CLIENT_SECRET
    from invoice_mcp.sandbox.auth import TokenStore as SandboxTokens

    issued: list[str] = []
    original = SandboxTokens.issue

    def recording_issue(self: SandboxTokens, now: float) -> str:
        token = original(self, now)
        issued.append(token)
        return token

    handler = _Everything()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    SandboxTokens.issue = recording_issue  # type: ignore[method-assign]
    try:
        yield
    finally:
        SandboxTokens.issue = original  # type: ignore[method-assign]
        root.removeHandler(handler)
        root.setLevel(previous)
    text = "\n".join(handler.lines)
    leaked = [t for t in issued if t in text]
    assert not leaked, f"{len(leaked)} access token(s) appear in log lines"
    assert DEMO_CLIENT_SECRET not in text


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        default=False,
        help="rewrite tests/snapshots/ from the code instead of comparing (or INVOICE_MCP_UPDATE_SNAPSHOTS=1)",
    )


@pytest.fixture
def update_snapshots(request: pytest.FixtureRequest) -> bool:
    """True only when asked explicitly: a missing or different snapshot otherwise fails the test."""
    return bool(request.config.getoption("--update-snapshots")) or os.environ.get("INVOICE_MCP_UPDATE_SNAPSHOTS") == "1"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server on loopback, one per test module that asks (its tests share it)."""
    from .procs import running_redis

    with running_redis() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """One real Postgres for the whole run (started only if a test asks for it)."""
    from .pg import running_postgres

    with running_postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database of the shared test Postgres."""
    from .pg import fresh_database

    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A state store URL, once per backend: an SQLite file in a fresh folder, then a fresh Postgres database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('state')}/state.db"
    else:
        yield request.getfixturevalue("postgres_url")


# Fixtures that start a real server process: a test that asks for one spends real seconds.
_SLOW_FIXTURES = frozenset({"redis_url", "postgres_server", "postgres_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`slow` on every test that starts Redis or Postgres (directly or through `state_url`'s
    postgres case), so `-m "not slow"` is a fast loop without each module remembering the mark;
    modules that start subprocesses or a browser carry the mark themselves."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("state_url") == "postgres"
        if names & _SLOW_FIXTURES or on_postgres:
            item.add_marker(pytest.mark.slow)
    # The modules that build something (the container image, its Debian base on a fresh machine,
    # the bundle) go first: with worker processes each takes a worker from the start while the rest
    # of the suite shares the others, instead of starting last and running on alone.
    items.sort(key=lambda item: item.path.name not in _BUILDERS)


_BUILDERS = frozenset({"test_container.py", "test_bundle.py"})
