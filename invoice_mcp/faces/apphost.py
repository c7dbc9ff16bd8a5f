"""A test host for the MCP Apps views, on loopback: a page that implements the host side of the
Apps protocol (apphost.html) and a backend that holds one MCP client session with the real
server, negotiating Apps like Claude or VS Code do. The page renders a view the way hosts do
(sandboxed iframe, opaque origin), and the view's tool calls reach the real server through it.

`invoice-mcp apphost` runs it against the embedded sandbox; the browser tests and the screenshot
script drive it in headless Chromium. Confirmations the server asks for (elicitation) are
answered by the backend's policy (`confirm`) and recorded in `elicitations`: the test host has
no dialog of its own.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from typing import Any, Literal, TypeVar

import anyio
import uvicorn
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import Client
from mcp.client.extension import advertise
from mcp.types import CallToolResult, ElicitResult, TextResourceContents
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from invoice_mcp.api.settings import Settings
from invoice_mcp.server import build_server
from invoice_mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

log = logging.getLogger("invoice_mcp.apphost")
T = TypeVar("T")

CREATE_LINES = [
    {"description": "Onboarding workshop", "amount": 1200, "quantity": 1},
    {"description": "Seats (monthly)", "amount": 49.99, "quantity": 12},
]


def dump(result: CallToolResult) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


class AppHost:
    """The backend. `specs` holds named scenarios a test can open with `?spec=NAME`:
    `{"tool": …, "arguments": …}` and optionally a ready `result` shown instead of calling the tool
    (and, for the benchmark's baseline, an `html` document shown instead of the tool's view)."""

    def __init__(self, settings: Settings, *, confirm: Literal["accept", "decline"] = "accept") -> None:
        self.settings = settings
        self.confirm = confirm
        self.elicitations: list[str] = []
        self.specs: dict[str, dict[str, Any]] = {}
        self.client: Client | None = None
        self.url = ""
        self._portal: BlockingPortal | None = None

    async def _elicit(self, context: Any, params: Any) -> ElicitResult:
        self.elicitations.append(str(getattr(params, "message", "")))
        if self.confirm == "accept":
            return ElicitResult(action="accept", content={"ok": True})
        return ElicitResult(action="decline")

    def _session(self) -> Client:
        assert self.client is not None
        return self.client

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return dump(await self._session().call_tool(name, arguments))

    async def preset(self, view: str) -> tuple[str, dict[str, Any]]:
        """What each view of the menu shows: real calls against whatever account is behind the server."""
        c = self._session()
        if view == "summary":
            return "summarize_invoices", {}
        if view == "list":
            return "list_invoices", {"limit": 10}
        chunk = (await c.call_tool("list_invoices", {"limit": 50})).structured_content or {}
        rows = chunk.get("rows") or []
        if not rows:
            raise LookupError("the account has no invoices")
        pick = next((r for r in rows if r[2] == "partially_paid"), None) or next(
            (r for r in rows if r[2] == "paid"), rows[0]
        )
        if view == "invoice":
            return "get_invoice", {"invoice": pick[0]}
        if view == "create":
            one = (await c.call_tool("get_invoice", {"invoice": pick[0]})).structured_content or {}
            return "create_invoice", {
                "customer_id": one.get("customer_id"),
                "line_items": CREATE_LINES,
                "dry_run": True,
            }
        raise LookupError(f"no view {view!r}")

    async def open(self, body: dict[str, Any]) -> dict[str, Any]:
        c = self._session()
        spec = self.specs.get(str(body.get("spec"))) if body.get("spec") else None
        if spec is not None:
            tool, arguments = spec["tool"], spec.get("arguments", {})
        else:
            tool, arguments = await self.preset(str(body.get("view", "list")))
        tools = {t.name: t for t in (await c.list_tools()).tools}
        meta = tools[tool].meta or {}
        uri = meta.get("ui", {}).get("resourceUri")
        if not uri:
            raise LookupError(f"{tool} has no view")
        contents = (await c.read_resource(uri)).contents[0]
        assert isinstance(contents, TextResourceContents) and contents.mime_type == APP_MIME_TYPE
        html = spec["html"] if spec is not None and "html" in spec else contents.text
        result = spec["result"] if spec is not None and "result" in spec else await self.call(tool, arguments)
        return {
            "tool": tool,
            "arguments": arguments,
            "uri": uri,
            "title": f"{tool} view",
            "html": html,
            "result": result,
        }

    def app(self) -> Starlette:
        page = (files("invoice_mcp.faces") / "apphost.html").read_text(encoding="utf-8")

        async def index(_: Request) -> Response:
            return HTMLResponse(page, headers={"Cache-Control": "no-store"})

        async def api_open(request: Request) -> Response:
            try:
                return JSONResponse(await self.open(await request.json()))
            except (LookupError, KeyError) as exc:
                return JSONResponse({"error": str(exc)})

        async def api_call(request: Request) -> Response:
            body = await request.json()
            name, arguments = body.get("name"), body.get("arguments") or {}
            if not isinstance(name, str) or not isinstance(arguments, dict):
                return JSONResponse({"error": "tools/call needs a name and arguments"})
            return JSONResponse({"result": await self.call(name, arguments)})

        return Starlette(
            routes=[
                Route("/", index),
                Route("/api/open", api_open, methods=["POST"]),
                Route("/api/call", api_call, methods=["POST"]),
            ]
        )

    async def _serve(self, port: int, started: threading.Event, stop: anyio.Event) -> None:
        ad = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
        async with Client(build_server(self.settings), extensions=[ad], elicitation_callback=self._elicit) as client:
            self.client = client
            config = uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
            server = uvicorn.Server(config)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)  # listening before uvicorn runs: the first request waits in the backlog
            self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.serve, [sock])
                started.set()
                await stop.wait()
                server.should_exit = True

    @contextmanager
    def running(self, port: int = 0) -> Iterator[AppHost]:
        started = threading.Event()
        with start_blocking_portal() as portal:
            self._portal = portal
            stop = portal.call(anyio.Event)
            future = portal.start_task_soon(self._serve, port, started, stop)
            if not started.wait(60):
                raise RuntimeError("the test host did not start")
            try:
                yield self
            finally:
                portal.call(stop.set)
                future.result(60)
                self._portal = None

    def sync(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run one of this host's coroutines (`call`, `preset`) from another thread, on the loop
        that holds its MCP session."""
        assert self._portal is not None, "the host is not running"
        return self._portal.call(fn, *args)


VIEW_NAMES = ("list", "summary", "invoice", "create")


@contextmanager
def sandbox_host(confirm: Literal["accept", "decline"] = "accept", port: int = 0) -> Iterator[AppHost]:
    """The test host over the embedded sandbox (demo data, loopback only)."""
    from invoice_mcp.api.settings import load_settings
    from invoice_mcp.sandbox import Sandbox, SandboxConfig

    sandbox = Sandbox(SandboxConfig())
    url = sandbox.start()
    try:
        settings = load_settings(
            {
                "AP_CLIENT_ID": sandbox.config.client_id,
                "AP_CLIENT_SECRET": sandbox.config.client_secret,
                "AP_ENVIRONMENT": "demo",
                "AP_BASE_URL": url,
            }
        )
        with AppHost(settings, confirm=confirm).running(port) as host:
            yield host
    finally:
        sandbox.stop()


def screenshots(out_dir: str, width: int = 640) -> list[str]:
    """PNGs of the four views in both themes, as the test host renders them in headless Chromium."""
    import os

    from invoice_mcp.faces.chromium import chromium

    os.makedirs(out_dir, exist_ok=True)
    written = []
    with sandbox_host() as host, chromium() as browser:
        page = browser.page(width + 40, 900)
        for view in VIEW_NAMES:
            for theme in ("light", "dark"):
                page.goto(f"{host.url}?view={view}&theme={theme}&width={width}")
                page.frame_wait("document.querySelector('main h1')")
                page.wait_settled()
                path = os.path.join(out_dir, f"{view}-{theme}.png")
                with open(path, "wb") as fh:
                    fh.write(page.screenshot())
                written.append(path)
    return written


def serve(port: int, confirm: Literal["accept", "decline"]) -> int:
    """`invoice-mcp apphost`: the test host page over the embedded sandbox until Ctrl-C."""
    import sys

    with sandbox_host(confirm, port) as host:
        print(f"Test host for the MCP Apps views: {host.url}", flush=True)
        print(
            "Views: " + "  ".join(f"{host.url}?view={v}" for v in VIEW_NAMES) + "  (&theme=dark, &width=360)",
            flush=True,
        )
        print(f"Confirmations asked by the server are answered '{confirm}'. Ctrl-C stops.", file=sys.stderr, flush=True)
        threading.Event().wait()
    return 0
