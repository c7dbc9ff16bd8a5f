"""The `invoice-mcp` command: check, configuration errors, stdio end to end, the standalone
sandbox, the MCP Inspector CLI, and log redaction."""

from __future__ import annotations

import json
import logging
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters

from invoice_mcp.logs import RedactingFilter
from invoice_mcp.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox

from .conftest import text_of
from .procs import ALL_TOOLS, api_env, base_env, free_port, run_cli, stop

WRITE_TOOLS = {
    "create_invoice",
    "archive_invoice",
    "restore_invoice",
    "create_invoices",
    "archive_invoices",
    "restore_invoices",
}


def test_check_ok(sandbox: Sandbox, tmp_path: Path) -> None:
    res = run_cli(["check"], api_env(sandbox), tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("OK:")
    assert sandbox.base_url in res.stdout and "100 invoices visible on the first page" in res.stdout
    assert sandbox.config.client_secret not in res.stdout + res.stderr
    assert not any(tok in res.stdout + res.stderr for tok in sandbox.issued_tokens)


def test_check_wrong_secret(sandbox: Sandbox, tmp_path: Path) -> None:
    wrong = "not-the-secret-93af1c"
    res = run_cli(["check"], api_env(sandbox, AP_CLIENT_SECRET=wrong), tmp_path)
    assert res.returncode == 1
    assert res.stdout.startswith("FAILED:")
    assert "403" in res.stdout and "AP_CLIENT_SECRET" in res.stdout
    assert wrong not in res.stdout + res.stderr


def test_check_settings_error_names_variables(tmp_path: Path) -> None:
    res = run_cli(["check"], {"AP_ENVIRONMENT": "staging"}, tmp_path)
    assert res.returncode == 1
    for var in ("AP_CLIENT_ID", "AP_CLIENT_SECRET", "AP_ENVIRONMENT"):
        assert var in res.stdout


@pytest.mark.slow
def test_check_unreachable(tmp_path: Path) -> None:
    env = {"AP_CLIENT_ID": "id", "AP_CLIENT_SECRET": "s3cret-value", "AP_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    res = run_cli(["check"], env, tmp_path)
    assert res.returncode == 1
    assert "cannot reach the API" in res.stdout and "s3cret-value" not in res.stdout + res.stderr


def test_missing_client_id_exits_2(sandbox: Sandbox, tmp_path: Path) -> None:
    env = api_env(sandbox)
    del env["AP_CLIENT_ID"]
    res = run_cli([], env, tmp_path)
    assert res.returncode == 2
    assert "AP_CLIENT_ID" in res.stderr
    assert "Traceback" not in res.stderr
    assert res.stdout == ""  # stdout is the MCP wire: nothing else may appear there


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.slow
async def test_stdio_end_to_end(sandbox: Sandbox, tmp_path: Path, mode: Any) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "invoice_mcp"], env=api_env(sandbox), cwd=tmp_path
    )
    async with Client(params, mode=mode) as client:
        assert {t.name for t in (await client.list_tools()).tools} == ALL_TOOLS
        r = await client.call_tool("list_invoices", {"limit": 4})
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None
    assert [row[0] for row in r.structured_content["rows"]] == [
        i["invoice_number"] for i in sandbox.invoices(include_archived=False)[:4]
    ]


@pytest.mark.anyio
@pytest.mark.slow
async def test_stdio_read_only_flag(sandbox: Sandbox, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "invoice_mcp", "--read-only"], env=api_env(sandbox), cwd=tmp_path
    )
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names == ALL_TOOLS - WRITE_TOOLS


def _first_line(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            return proc.stdout.readline()
        if proc.poll() is not None:
            break
    raise AssertionError(f"no output from the sandbox (exit code {proc.poll()})")


@pytest.mark.parametrize("own_credentials", [False, True])
@pytest.mark.slow
def test_standalone_sandbox(tmp_path: Path, own_credentials: bool) -> None:
    cid, secret = ("my-client", "my-secret-5e1d0b") if own_credentials else (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    env = {"AP_CLIENT_ID": cid, "AP_CLIENT_SECRET": secret} if own_credentials else {}
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoice_mcp", "sandbox", "--port", "0"],
        env=base_env(env),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        first = _first_line(proc)
        url = first.strip().split()[-1]
        assert url.startswith("http://127.0.0.1:"), first
        creds = proc.stdout.readline() if proc.stdout else ""
        assert cid in creds
        assert (secret in creds) is (not own_credentials)  # a user's own secret is never echoed
        r = httpx.post(url + "/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
        assert r.status_code == 200 and r.json()["access_token"]
        if own_credentials:
            r = httpx.post(
                url + "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
            )
            assert r.status_code == 403
    finally:
        stop(proc)


@pytest.mark.slow
def test_inspector_cli_lists_tools(tmp_path: Path) -> None:
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx is not on PATH: the MCP Inspector CLI cannot run")
    res = subprocess.run(
        [
            npx,
            "-y",
            "@modelcontextprotocol/inspector@2.12.0",
            "--cli",
            sys.executable,
            "-m",
            "invoice_mcp",
            "--sandbox",
            "--method",
            "tools/list",
        ],
        env=base_env(),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    tools = json.loads(res.stdout)["tools"]
    assert {t["name"] for t in tools} == ALL_TOOLS
    assert all(t.get("inputSchema", {}).get("type") == "object" for t in tools)


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)


def test_log_redaction() -> None:
    f = RedactingFilter(["client-secret-value"])
    rec = _record(
        "invoice_mcp.api.client", "GET %s with Authorization: Bearer %s", "https://pay.x.com/p/tok123", "abc.def-1"
    )
    f.filter(rec)
    out = rec.getMessage()
    assert "tok123" not in out and "abc.def-1" not in out and "https://pay.x.com/" in out
    rec = _record("mcp.server.mcpserver.server", "Tool %r failed: %r", "x", "secret client-secret-value leaked")
    f.filter(rec)
    assert "client-secret-value" not in rec.getMessage() and "Tool 'x' failed" in rec.getMessage()
    # Other libraries' URLs are kept (e.g. uvicorn's own banner); credentials are masked everywhere.
    rec = _record("uvicorn.error", "Uvicorn running on http://127.0.0.1:8000/mcp, Bearer zz-99-token")
    f.filter(rec)
    assert "http://127.0.0.1:8000/mcp" in rec.getMessage() and "zz-99-token" not in rec.getMessage()
    # Words after "bearer" are not mistaken for tokens.
    rec = _record("invoice_mcp.faces.http", "bearer token required")
    f.filter(rec)
    assert rec.getMessage() == "bearer token required"
    # Tracebacks are redacted too.
    try:
        raise RuntimeError("boom client-secret-value")
    except RuntimeError:
        rec = logging.LogRecord("invoice_mcp", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    f.filter(rec)
    assert rec.exc_text is not None and "client-secret-value" not in rec.exc_text and "boom" in rec.exc_text


def test_help_lists_every_setting_and_points_to_no_unshipped_file() -> None:
    import re

    from invoice_mcp.api import settings
    from invoice_mcp.faces.cli import build_parser

    text = build_parser().format_help()
    source = Path(settings.__file__).read_text(encoding="utf-8")
    names = set(re.findall(r"""\(\s*["']((?:AP|INVOICE_MCP)_[A-Z_]+)["']""", source))  # read.text("AP_…"), …
    assert {"AP_CLIENT_ID", "AP_CLIENT_SECRET", "INVOICE_MCP_HTTP_TOKEN"} <= names
    assert sorted(n for n in names if n not in text) == []
    assert ".env.example" not in text
