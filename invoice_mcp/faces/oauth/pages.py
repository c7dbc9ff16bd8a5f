"""The connect page: where the user of an assistant links their Alternative Payments key.

GET shows which client asks, for which scopes and where the user returns to, and a form
for the API key; POST checks the key by minting an API token (a wrong key is a message on
the page and nothing is stored), then makes the grant and sends the browser back to the
client with a code. The page loads nothing from anywhere (no script, no image, no font;
one inline style allowed by its hash), cannot be framed, and is never cached. Cross-site
posts are refused: the form carries a ``csrf_token`` bound to a same-site cookie. The key
is never put in a URL, a log line or an error; client-supplied text is inserted as text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from invoice_mcp.faces.oauth.config import READ_SCOPE, WRITE_SCOPE
from invoice_mcp.faces.oauth.provider import CONNECT_PATH, ConnectError, InvoiceAuthProvider, LinkedKey, Pending

log = logging.getLogger(__name__)

CSRF_COOKIE = "imcp_connect"
MAX_FIELD = 512
MAX_FORM_BYTES = 16 * 1024

KeyCheck = Callable[[LinkedKey], Awaitable[str | None]]
"""Mints an API token with the key: None when the API accepted it, else the message to show."""

SCOPE_TEXT = {
    READ_SCOPE: "Read your invoices, customers and payments",
    WRITE_SCOPE: "Create, archive and restore invoices (a created invoice is live and payable)",
}

STYLE = """
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#111}
main{max-width:34rem;margin:2rem auto;background:#fff;border:1px solid #c8ccd2;border-radius:8px;padding:1.5rem 2rem}
h1{font-size:1.35rem;margin:0 0 1rem}
p,ul{margin:0 0 1rem}
.who{font-weight:600}
.muted{color:#3d4451}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input[type=text],input[type=password],select{width:100%;padding:.55rem .6rem;font:inherit;color:#111;background:#fff;
border:2px solid #5b6270;border-radius:6px}
.check{display:flex;gap:.5rem;align-items:flex-start;font-weight:400}
.check input{margin-top:.35rem;width:1.1rem;height:1.1rem}
:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}
.error{border:2px solid #a50e0e;background:#fce8e6;color:#5c0707;padding:.75rem 1rem;border-radius:6px}
.buttons{display:flex;gap:1rem;margin-top:1.5rem}
button{font:inherit;font-weight:600;padding:.6rem 1.4rem;border-radius:6px;cursor:pointer;border:2px solid #0b57d0}
button.approve{background:#0b57d0;color:#fff}
button.deny{background:#fff;color:#0b3d91}
.note{font-size:.9rem;color:#3d4451;margin-top:1.5rem}
"""
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()


def _origin_source(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:"


def _headers(pending: Pending | None) -> dict[str, str]:
    # Chromium applies form-action to the redirect that follows the post: allow the client's origin.
    form_action = "'self'" + (f" {_origin_source(pending.redirect_uri)}" if pending is not None else "")
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; form-action {form_action}; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _client_label(pending: Pending) -> tuple[str, str]:
    """(name shown, where it comes from) — the name is the client's claim; the host is fact."""
    name = pending.client_name.strip() or "An application"
    if pending.client_id.startswith(("https://", "http://")):
        source = f"identified by {urlsplit(pending.client_id).netloc}"
    else:
        source = "registered itself with this server"
    return name, source


class ConnectPage:
    def __init__(self, provider: InvoiceAuthProvider, environments: dict[str, str], default_env: str, check: KeyCheck):
        self.provider = provider
        self.environments = environments
        self.default_env = default_env
        self.check = check
        self._csrf_key = hmac.new(provider.config.state_key, b"invoice-mcp/connect-csrf/v1", hashlib.sha256).digest()

    def routes(self) -> list[Route]:
        return [Route(CONNECT_PATH, self.handle, methods=["GET", "POST"])]

    def _csrf(self, nonce: str, txn: str) -> str:
        return hmac.new(self._csrf_key, f"{nonce}|{txn}".encode(), hashlib.sha256).hexdigest()

    async def handle(self, request: Request) -> Response:
        if request.method == "GET":
            return self._get(request)
        return await self._post(request)

    def _message(self, status: int, title: str, text: str) -> Response:
        body = (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><main><h1>{html.escape(title)}</h1>"
            f'<p role="alert">{html.escape(text)}</p></main></body></html>'
        )
        return HTMLResponse(body, status_code=status, headers=_headers(None))

    def _get(self, request: Request) -> Response:
        txn = request.query_params.get("txn", "")
        try:
            pending = self.provider.pending(txn)
        except ConnectError as exc:
            return self._message(400, "Sign-in link not valid", str(exc))
        nonce = secrets.token_urlsafe(24)
        response = self._page(pending, txn, self._csrf(nonce, txn))
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            max_age=900,
            path=CONNECT_PATH,
            secure=self.provider.config.secure_cookies,
            httponly=True,
            samesite="strict",
        )
        return response

    def _page(
        self,
        pending: Pending,
        txn: str,
        csrf: str,
        *,
        error: str | None = None,
        client_id: str = "",
        environment: str | None = None,
        status: int = 200,
    ) -> Response:
        esc = html.escape
        name, source = _client_label(pending)
        back_to = urlsplit(pending.redirect_uri).netloc or pending.redirect_uri.split(":", 1)[0]
        scopes = "".join(f"<li>{esc(SCOPE_TEXT[s])}</li>" for s in pending.scopes if s in SCOPE_TEXT)
        env = environment or self.default_env
        options = "".join(
            f'<option value="{esc(e)}"{" selected" if e == env else ""}>{esc(e.capitalize())}</option>'
            for e in sorted(self.environments)
        )
        write_choice = ""
        if WRITE_SCOPE in pending.scopes:
            write_choice = (
                '<label class="check" for="allow_write"><input type="checkbox" id="allow_write" name="allow_write" '
                'value="1" checked> <span>Allow changes: create, archive and restore invoices. Untick for read-only '
                "access.</span></label>"
            )
        alert = f'<p class="error" role="alert" id="error">{esc(error)}</p>' if error else ""
        described = ' aria-describedby="error"' if error else ""
        body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Connect your Alternative Payments account</title><style>{STYLE}</style></head>
<body><main>
<h1>Connect your Alternative Payments account</h1>
<p><span class="who">«{esc(name)}»</span> <span class="muted">({esc(source)})</span> asks to:</p>
<ul>{scopes}</ul>
<p class="muted">After you approve you return to <strong>{esc(back_to)}</strong>.</p>
{alert}
<form method="post" action="{CONNECT_PATH}" autocomplete="off">
<input type="hidden" name="txn" value="{esc(txn)}">
<input type="hidden" name="csrf_token" value="{esc(csrf)}">
<label for="ap_client_id">API client ID</label>
<input type="text" id="ap_client_id" name="ap_client_id" required maxlength="{MAX_FIELD}" spellcheck="false"
 autocapitalize="off" value="{esc(client_id)}"{described}>
<label for="ap_client_secret">API client secret</label>
<input type="password" id="ap_client_secret" name="ap_client_secret" required maxlength="{MAX_FIELD}"
 autocomplete="off"{described}>
<label for="ap_environment">Environment</label>
<select id="ap_environment" name="ap_environment">{options}</select>
{write_choice}
<div class="buttons">
<button type="submit" class="approve" name="action" value="approve">Approve</button>
<button type="submit" class="deny" name="action" value="deny" formnovalidate>Deny</button>
</div>
</form>
<p class="note">Find the key in the Partner Dashboard under API Keys. It is checked with Alternative Payments now,
then stored encrypted on this server and used only for this connection. You can revoke access at any time.</p>
</main></body></html>"""
        return HTMLResponse(body, status_code=status, headers=_headers(pending))

    async def _post(self, request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            return self._message(413, "Request too large", "The form is larger than this page ever sends.")
        form = await request.form(max_files=0, max_fields=20)

        def field(name: str) -> str:
            value = form.get(name)
            return value.strip() if isinstance(value, str) else ""

        txn = field("txn")
        nonce = request.cookies.get(CSRF_COOKIE, "")
        given = field("csrf_token")
        if not nonce or not given or not hmac.compare_digest(given, self._csrf(nonce, txn)):
            log.info("connect form refused: missing or wrong csrf token")
            return self._message(
                403,
                "Form not accepted",
                "This form did not come from this page, or its session ended. Go back to your assistant and "
                "connect again.",
            )
        try:
            pending = self.provider.pending(txn)
        except ConnectError as exc:
            return self._message(400, "Sign-in link not valid", str(exc))
        if field("action") == "deny":
            return RedirectResponse(self.provider.denied(pending), status_code=303, headers=_headers(pending))
        client_id, secret, env = field("ap_client_id"), field("ap_client_secret"), field("ap_environment")
        error = None
        if not client_id or not secret:
            error = "Enter both the API client ID and its secret."
        elif any(len(v) > MAX_FIELD or not v.isascii() or not v.isprintable() for v in (client_id, secret)):
            error = f"The API client ID and secret are printable ASCII, at most {MAX_FIELD} characters."
        elif env not in self.environments:
            error = f"Choose one of the environments: {', '.join(sorted(self.environments))}."
        key = LinkedKey(client_id, secret, env)
        if error is None:
            error = await self.check(key)
        if error is not None:
            return self._page(
                pending,
                txn,
                given,
                error=error,
                client_id=client_id if client_id.isprintable() and len(client_id) <= MAX_FIELD else "",
                environment=env if env in self.environments else None,
                status=400,
            )
        scopes = pending.scopes
        if WRITE_SCOPE in scopes and field("allow_write") != "1":
            scopes = tuple(s for s in scopes if s != WRITE_SCOPE)
        target = await self.provider.approve(pending, key, scopes)
        response = RedirectResponse(target, status_code=303, headers=_headers(pending))
        response.delete_cookie(CSRF_COOKIE, path=CONNECT_PATH)
        return response
