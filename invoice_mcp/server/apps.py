"""MCP Apps views (`io.modelcontextprotocol/ui`): four `ui://` HTML resources a host renders in a
sandboxed iframe next to a tool's result, and what binds them to their tools.

Everything here is additive and only for clients that negotiate Apps. Such a client sees
`_meta.ui.resourceUri` on four tools in `tools/list`; any other client gets exactly the tools/list
and results it got before (the views cost it nothing, not even tokens). The views read the same
structured content every client gets, so the text and structured views stay complete for the model.

Each view is one self-contained HTML document assembled at start-up from the files in `views/`
(shipped as package data): a small bridge that speaks the Apps handshake over postMessage, shared
helpers and the view's own script, all inline and pinned by hash in the document's own CSP. No
external origin is declared or needed: the iframe talks to nothing but its host.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID, Apps, ResourceCsp
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context

__all__ = [
    "APP_MIME_TYPE",
    "EXTENSION_ID",
    "VIEWS",
    "View",
    "build_apps",
    "client_negotiated_apps",
    "document_csp",
    "view_html",
]


@dataclass(frozen=True)
class View:
    tool: str
    uri: str
    script: str
    title: str
    description: str


VIEWS: tuple[View, ...] = (
    View(
        "list_invoices",
        "ui://invoice-mcp/invoices.html",
        "list.js",
        "Invoices table",
        "Sortable invoice table with paging; a row opens the invoice",
    ),
    View(
        "summarize_invoices",
        "ui://invoice-mcp/summary.html",
        "summary.js",
        "Ledger at a glance",
        "Balance owed, aging chart, top customers, drafts and archived apart",
    ),
    View(
        "get_invoice",
        "ui://invoice-mcp/invoice.html",
        "invoice.js",
        "Invoice card",
        "Lines, totals, payments timeline, balance due; payment link, archive and restore",
    ),
    View(
        "create_invoice",
        "ui://invoice-mcp/create.html",
        "create.js",
        "New invoice preview",
        "The invoice a dry run would create, with a Create button",
    ),
)
BY_TOOL = {v.tool: v for v in VIEWS}

SHARED = ("bridge.js", "ui.js", "card.js")
"""Scripts every view carries, before its own."""

CSP = ResourceCsp(connect_domains=[], resource_domains=[], frame_domains=[], base_uri_domains=[])
"""Declared to hosts: no external origin of any kind."""


def _asset(name: str) -> str:
    return (files("invoice_mcp.server") / "views" / name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def document_csp(script: str, style: str) -> str:
    """The document's own policy, stricter than any host's: only these exact inline script and
    style blocks run, nothing is fetched, nothing is framed, no form or base can point elsewhere."""
    return (
        f"default-src 'none'; script-src {_sha256(script)}; style-src {_sha256(style)}; img-src data:; "
        "connect-src 'none'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"
    )


def assemble(title: str, scripts: list[str], *, body_class: str = "") -> str:
    """One HTML document with the shared style and the given scripts inline (also used by the
    benchmark's blank page, which carries the same bridge)."""
    style = _asset("ui.css")
    script = "\n;\n".join(scripts)
    if "</script" in script.lower() or "</style" in style.lower():  # pragma: no cover - guards the shipped assets
        raise ValueError("a view asset closes its own element")
    csp = document_csp(script, style)
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{style}</style></head>"
        f'<body class="{body_class}"><main id="app" aria-live="polite">'
        '<p class="muted">Loading…</p></main>'
        f"<script>{script}</script></body></html>\n"
    )


@cache
def view_html(tool: str) -> str:
    v = BY_TOOL[tool]
    return assemble(v.title, [_asset(n) for n in (*SHARED, v.script)], body_class=f"view-{v.script[:-3]}")


def build_apps(tools: set[str]) -> Apps:
    """The Apps extension with a view for each of `tools` that has one (read-only mode has no
    create view). Tools are not registered through it: their `_meta.ui` is added per client
    (`ui_meta`), so that clients without Apps get the tools/list they always had."""
    apps = Apps()
    for v in VIEWS:
        if v.tool in tools:
            apps.add_html_resource(
                v.uri,
                view_html(v.tool),
                name=v.uri.removeprefix("ui://invoice-mcp/").removesuffix(".html"),
                title=v.title,
                description=v.description,
                csp=CSP,
                prefers_border=True,
            )
    return apps


def ui_meta(tool: str) -> dict[str, Any] | None:
    v = BY_TOOL.get(tool)
    return None if v is None else {"ui": {"resourceUri": v.uri}}


def client_negotiated_apps(ctx: Context[Any, Any] | ServerRequestContext[Any, Any]) -> bool:
    """Whether the client can render Apps views: it lists the app MIME type under the extension,
    advertised as an extension (2026-07-28) or, by clients of the 2025-11-25 era whose
    capabilities have no `extensions` field, under `experimental`."""
    try:
        caps = ctx.client_capabilities if isinstance(ctx, Context) else ctx.session.client_capabilities
    except (AttributeError, ValueError):  # no request in flight (a direct call in a test)
        return False
    if caps is None:
        return False
    for group in (caps.extensions, caps.experimental):
        settings = (group or {}).get(EXTENSION_ID)
        if isinstance(settings, dict):
            mime_types = settings.get("mimeTypes")
            if isinstance(mime_types, list | tuple) and APP_MIME_TYPE in mime_types:
                return True
    return False


def asset_sizes() -> dict[str, int]:
    """Bytes of each view's HTML (UTF-8), for the size test and the benchmark."""
    return {v.uri: len(view_html(v.tool).encode()) for v in VIEWS}
