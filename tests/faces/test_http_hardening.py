"""Issue 12 §7: the HTTP transport's resource bounds and loopback rules, over real sockets.

Deadlines are set short (fractions of a second) for the test; every wait is a bounded poll on
a condition (the socket closed, the session gone), never a fixed sleep or a timing margin."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from mcp import Client

from invoice_mcp.api.settings import Settings
from invoice_mcp.faces.http import (
    MIN_TOKEN_CHARS,
    DeadlineH11Protocol,
    HTTPConfigError,
    HTTPOptions,
    _bind,
    build_http_app,
    check_options,
    is_loopback,
    transport_security,
    uvicorn_config,
)
from invoice_mcp.sandbox import Sandbox

from ..conftest import settings_for, text_of
from ..procs import api_env, base_env, free_port, stop

pytestmark = pytest.mark.slow

INIT = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
    b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
)
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class Running:
    def __init__(self, server: uvicorn.Server, thread: threading.Thread, port: int) -> None:
        self.server, self.thread, self.port = server, thread, port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def run_in_thread(settings: Settings, opts: HTTPOptions) -> Iterator[Running]:
    sock = _bind(opts.host, 0)
    port = int(sock.getsockname()[1])
    app = build_http_app(settings, opts, log_level="WARNING", port=port)
    server = uvicorn.Server(uvicorn_config(app, opts))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # bounded poll for start-up
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    try:
        yield Running(server, thread, port)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def fast_deadlines(sandbox: Sandbox) -> Iterator[Running]:
    opts = HTTPOptions(header_timeout_s=0.3, body_timeout_s=0.3, max_sessions=2, session_idle_timeout_s=0.5)
    yield from run_in_thread(settings_for(sandbox), opts)


def closed_within(sock: socket.socket, limit_s: float = 10.0) -> bool:
    """True once the server closes the connection (recv returns b''); False if still open at the limit."""
    sock.settimeout(limit_s)
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_stalled_headers_are_closed(fast_deadlines: Running) -> None:
    before = DeadlineH11Protocol.expired
    silent = socket.create_connection(("127.0.0.1", fast_deadlines.port))
    partial = socket.create_connection(("127.0.0.1", fast_deadlines.port))
    partial.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    assert closed_within(silent) and closed_within(partial)
    assert DeadlineH11Protocol.expired >= before + 2  # our deadline closed them, not a peer error
    silent.close()
    partial.close()


def test_trickled_headers_do_not_extend_the_deadline(fast_deadlines: Running) -> None:
    sock = socket.create_connection(("127.0.0.1", fast_deadlines.port))
    sock.sendall(b"GET /health HTTP/1.1\r\n")
    sent = 0
    closed = False
    for _ in range(200):  # a header byte every 50 ms would keep a per-read timeout alive forever
        try:
            sock.sendall(b"X")
            sent += 1
        except OSError:
            closed = True
            break
        if closed_within(sock, 0.05):
            closed = True
            break
    sock.close()
    assert closed and sent < 200


def test_stalled_body_is_closed(fast_deadlines: Running) -> None:
    sock = socket.create_connection(("127.0.0.1", fast_deadlines.port))
    sock.sendall(
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{"
    )
    assert closed_within(sock)
    sock.close()


def test_complete_requests_and_keep_alive_still_work(fast_deadlines: Running) -> None:
    with httpx.Client() as http:
        for _ in range(3):  # one keep-alive connection, several requests
            assert http.get(f"http://127.0.0.1:{fast_deadlines.port}/health").status_code == 200


def _initialize(http: httpx.Client, url: str) -> httpx.Response:
    return http.post(url, content=INIT, headers=MCP_HEADERS)


def test_session_cap_and_idle_expiry(fast_deadlines: Running) -> None:
    with httpx.Client() as http:
        first, second = _initialize(http, fast_deadlines.url), _initialize(http, fast_deadlines.url)
        assert first.status_code == second.status_code == 200
        third = _initialize(http, fast_deadlines.url)
        assert third.status_code == 503  # the cap holds
        sid = first.headers["mcp-session-id"]
        deadline = time.monotonic() + 20
        while _initialize(http, fast_deadlines.url).status_code != 200:  # room again once idle ones expire
            assert time.monotonic() < deadline, "idle sessions never expired"
            time.sleep(0.05)  # a bounded poll on "a new session is accepted" (it touches no old session)
        ping = b'{"jsonrpc":"2.0","id":2,"method":"ping"}'
        headers = {**MCP_HEADERS, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
        for _ in range(20):  # spaced wider than the idle timeout, so a ping never keeps it alive
            if http.post(fast_deadlines.url, content=ping, headers=headers).status_code == 404:
                break
            time.sleep(1.0)
        else:
            raise AssertionError("the idle session still answers")


# -- loopback and tokens --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]", "0:0:0:0:0:0:0:1", "localhost"]
)
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "128.0.0.1", "10.0.0.1", "::", "example.com", "localhost.example.com"])
def test_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_any_loopback_address_accepts_its_own_host() -> None:
    sec = transport_security(HTTPOptions(host="127.0.0.2"))
    assert sec is not None and "127.0.0.2:*" in sec.allowed_hosts and "http://127.0.0.2:*" in sec.allowed_origins
    sec6 = transport_security(HTTPOptions(host="::1"))
    assert sec6 is not None and "[::1]:*" in sec6.allowed_hosts


def _settings(token: str | None) -> Settings:
    return Settings(client_id="c", client_secret="s", http_token=token)  # type: ignore[arg-type]


def test_non_loopback_needs_a_long_token() -> None:
    with pytest.raises(HTTPConfigError, match=f"at least {MIN_TOKEN_CHARS}"):
        check_options(_settings("short-token-123"), HTTPOptions(host="0.0.0.0"))
    check_options(_settings("x" * MIN_TOKEN_CHARS), HTTPOptions(host="0.0.0.0"))
    check_options(_settings("short-token-123"), HTTPOptions(host="127.0.0.2"))  # loopback: warned, allowed
    with pytest.raises(HTTPConfigError, match="without authentication"):
        check_options(_settings(None), HTTPOptions(host="0.0.0.0"))
    with pytest.raises(HTTPConfigError, match="max-sessions"):
        check_options(_settings(None), replace(HTTPOptions(), max_sessions=0))


def test_short_token_refused_by_the_command(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "invoice_mcp", "--transport", "http", "--host", "0.0.0.0", "--port", "0"],
        env=base_env({"AP_CLIENT_ID": "c", "AP_CLIENT_SECRET": "s", "INVOICE_MCP_HTTP_TOKEN": "tooshort"}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 2 and "at least 32" in res.stderr and "tooshort" not in res.stderr


def test_server_on_127_0_0_2_answers_its_own_host(sandbox: Sandbox, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoice_mcp", "--transport", "http", "--host", "127.0.0.2", "--port", str(port)],
        env=base_env(api_env(sandbox)),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.2:{port}"

    async def list_one() -> Any:
        async with Client(base + "/mcp") as client:
            return await client.call_tool("list_invoices", {"limit": 1})

    try:
        deadline = time.monotonic() + 20
        while True:  # bounded poll until it answers
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            try:
                if httpx.get(base + "/health", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        r = anyio.run(list_one)
        assert not r.is_error, text_of(r)  # before: 421 to its own Host header
        assert httpx.post(base + "/mcp", json={}, headers={"Host": "evil.example"}).status_code == 421
    finally:
        stop(proc)
