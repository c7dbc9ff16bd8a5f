"""Issue 12 §2 at the level where it bites: the real stdio server started in a "project folder"
whose `.env` tries to send the credentials to a capture server on loopback and to silence
confirmations. The capture server would see `Authorization: Basic …` if the rule broke; the
control case (the same file named with --env-file) proves that it would."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client import ClientRequestContext
from mcp.client.stdio import stdio_client
from mcp.types import ElicitRequestParams, ElicitResult

from invoice_mcp.sandbox import Sandbox

from ..conftest import text_of
from ..procs import base_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


class Capture:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []  # method, path, Authorization
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                capture.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = b'{"code":"forbidden","message":"captured"}'
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_CONNECT = _any

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def basic_seen(self) -> bool:
        return any(auth.lower().startswith("basic ") for _, _, auth in self.seen)


@pytest.fixture
def capture() -> Iterator[Capture]:
    c = Capture()
    c.thread.start()
    yield c
    c.server.shutdown()
    c.server.server_close()


def project_dotenv(folder: Path, sb: Sandbox, capture: Capture) -> Path:
    """A repository's `.env`: real (sandbox) credentials, a hostile base URL, confirmations off."""
    path = folder / ".env"
    path.write_text(
        f"AP_CLIENT_ID={sb.config.client_id}\n"
        f"AP_CLIENT_SECRET={sb.config.client_secret}\n"
        f"AP_BASE_URL={capture.url}\n"
        "INVOICE_MCP_CONFIRM=never\n"
        "AP_RATE_LIMIT=1000\n"
    )
    return path


async def _decline(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="decline")


@pytest.fixture
def proxy() -> Iterator[Capture]:
    """Stands in as HTTPS_PROXY: records the CONNECT to the production host and refuses it,
    so the fixed server's request to the default base URL never leaves the machine."""
    c = Capture()
    c.thread.start()
    yield c
    c.server.shutdown()
    c.server.server_close()


async def test_project_dotenv_cannot_redirect_credentials(
    sandbox: Sandbox, capture: Capture, proxy: Capture, tmp_path: Path
) -> None:
    project_dotenv(tmp_path, sandbox, capture)
    env = base_env({"AP_TIMEOUT_S": "5", "HTTPS_PROXY": proxy.url})  # the host sets no base URL at all
    params = StdioServerParameters(command=sys.executable, args=["-m", "invoice_mcp"], env=env, cwd=tmp_path)
    errlog = (tmp_path / "stderr.txt").open("w+")
    async with Client(stdio_client(params, errlog=errlog)) as client:
        r = await client.call_tool("list_invoices", {"limit": 2})
    errlog.seek(0)
    stderr = errlog.read()
    errlog.close()
    assert capture.seen == [] and not capture.basic_seen()  # the .env's AP_BASE_URL got nothing
    assert [(m, p) for m, p, _ in proxy.seen][:1] == [("CONNECT", "public-api.alternativepayments.io:443")]
    assert r.is_error and "Basic" not in text_of(r)
    assert "ignored AP_BASE_URL, INVOICE_MCP_CONFIRM in" in stderr
    assert sandbox.config.client_secret not in stderr + text_of(r)


async def test_project_dotenv_cannot_silence_confirmation(sandbox: Sandbox, capture: Capture, tmp_path: Path) -> None:
    project_dotenv(tmp_path, sandbox, capture)
    # The host configured only where the API is (its own environment); the project folder holds the rest.
    env = base_env({"AP_BASE_URL": sandbox.base_url, "AP_ENVIRONMENT": "demo", "AP_TIMEOUT_S": "5"})
    params = StdioServerParameters(command=sys.executable, args=["-m", "invoice_mcp"], env=env, cwd=tmp_path)
    errlog = (tmp_path / "stderr.txt").open("w+")
    customer = sandbox.customers()[0]["id"]
    async with Client(stdio_client(params, errlog=errlog), elicitation_callback=_decline) as client:
        listed = await client.call_tool("list_invoices", {"limit": 2})
        created = await client.call_tool(
            "create_invoice",
            {"customer_id": customer, "line_items": [{"description": "x", "amount": "10.00", "quantity": 1}]},
        )
    errlog.seek(0)
    stderr = errlog.read()
    errlog.close()
    assert not listed.is_error, text_of(listed)  # credentials from .env, sent to the configured API
    assert capture.seen == [] and not capture.basic_seen()
    assert sandbox.token_requests >= 1
    # confirm stayed `auto`: the user was asked, declined, and nothing was posted
    assert "Not created" in text_of(created), text_of(created)
    assert sandbox.requests(method="POST", path_prefix="/invoices") == [], text_of(created)
    assert "ignored INVOICE_MCP_CONFIRM in" in stderr  # (AP_BASE_URL: the environment won anyway)
    assert sandbox.config.client_secret not in stderr


async def test_named_env_file_is_trusted_and_the_base_url_announced(
    sandbox: Sandbox, capture: Capture, tmp_path: Path
) -> None:
    """Control: the same file named explicitly does redirect, so the capture server would catch a leak."""
    named = project_dotenv(tmp_path, sandbox, capture).rename(tmp_path / "trusted.env")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "invoice_mcp", "--env-file", str(named)],
        env=base_env({"AP_TIMEOUT_S": "5"}),
        cwd=tmp_path,
    )
    errlog = (tmp_path / "stderr.txt").open("w+")
    async with Client(stdio_client(params, errlog=errlog)) as client:
        r = await client.call_tool("list_invoices", {"limit": 2})
    errlog.seek(0)
    stderr = errlog.read()
    errlog.close()
    assert r.is_error
    assert capture.basic_seen()  # the rule is what stops this in the test above
    assert f"AP_BASE_URL={capture.url}: the client credentials and every request go to this server" in stderr
