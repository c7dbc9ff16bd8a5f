"""The ``invoice-mcp`` command.

    invoice-mcp                      stdio server for the API configured in the environment (see --help)
    invoice-mcp --sandbox            ... against an embedded sandbox API (no credentials needed)
    invoice-mcp --transport http     streamable HTTP on 127.0.0.1:8000/mcp (see invoice_mcp.faces.http)
    invoice-mcp --transport http --gateway
                                     ... for many accounts: credentials per request (invoice_mcp.server.gateway)
    invoice-mcp demo                 a scripted assistant session against the sandbox
    invoice-mcp check                validate settings and credentials against the API
    invoice-mcp sandbox --port N     serve the sandbox API standalone

Exit codes: 0 ok, 1 check/demo failed, 2 configuration error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from datetime import date
from typing import TYPE_CHECKING

from invoice_mcp import __version__
from invoice_mcp.api.settings import ENV_FILE_VAR, Settings, SettingsError, load_settings
from invoice_mcp.logs import RedactingFilter, setup_logging

if TYPE_CHECKING:
    from invoice_mcp.sandbox import Sandbox

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CONFIG_HELP = """\
configuration, from the environment (a real environment variable always wins), else from a file
named with --env-file PATH / INVOICE_MCP_ENV_FILE=PATH (trusted like the environment), else ./.env:
  AP_CLIENT_ID, AP_CLIENT_SECRET   API key and its secret (required; the secret is never logged)
  AP_ENVIRONMENT *                 production (default) or demo
  AP_BASE_URL *                    override the API base URL (e.g. a local `invoice-mcp sandbox`)
  AP_TIMEOUT_S                     per-request timeout in seconds (default 30)
  AP_RATE_LIMIT                    requests per second sent to the API (default 5)
  INVOICE_MCP_READ_ONLY *          1 = read tools only: no create, archive or restore
  INVOICE_MCP_CONFIRM *            auto (default), always or never: confirm writes with the user
  INVOICE_MCP_LIST_ROWS            both (default), text or structured: where list rows go (hosts showing both)
  INVOICE_MCP_REDIS_URL *          share token and rate limit between processes (redis extra)
  INVOICE_MCP_HTTP_TOKEN *         bearer token for --transport http (off loopback: required, 32+ chars)
  INVOICE_MCP_GATEWAY *            1 = --gateway: API credentials come per request in headers
  INVOICE_MCP_GATEWAY_IDLE_S       gateway: drop a tenant idle this long (default 900)
  INVOICE_MCP_GATEWAY_MAX_TENANTS  gateway: tenants held at most (default 100)
  INVOICE_MCP_STATE *              --state: the journal of writes and the OAuth grants; default an SQLite
                                   file in the user's data folder; sqlite:///PATH, or postgresql://… shared by replicas
  INVOICE_MCP_STATE_KEY            Fernet key(s) for secrets kept in the state store (Postgres: required)
  INVOICE_MCP_JOURNAL_RETENTION_DAYS  drop journal entries older than this (default: keep all)
  INVOICE_MCP_AUTH                 bearer (default: INVOICE_MCP_HTTP_TOKEN if set) or oauth (= --auth)
  INVOICE_MCP_PUBLIC_URL           oauth: the https origin clients reach the server at (= --public-url)
  INVOICE_MCP_OAUTH_ACCESS_TTL_S   oauth: access-token lifetime in seconds (default 3600)
  INVOICE_MCP_OAUTH_ALLOW_LOOPBACK  tests only: 1 lets client-id documents and the public URL be plain http on loopback
* not taken from ./.env (a notice says so; INVOICE_MCP_READ_ONLY=1 is): a project folder's .env
  must not redirect the credentials or lower safety. Put them in the environment or an --env-file.
A base URL other than the official ones is announced on stderr.
`invoice-mcp check` validates the configuration against the API."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="invoice-mcp",
        description="MCP server for Alternative Payments invoices.",
        epilog=CONFIG_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"invoice-mcp {__version__}")
    p.add_argument(
        "--env-file",
        metavar="PATH",
        default=None,
        help=f"read settings from this file, trusted like the environment (also {ENV_FILE_VAR}=PATH)",
    )
    p.add_argument(
        "--sandbox",
        action="store_true",
        help="serve against an embedded sandbox API with demo data instead of the configured account",
    )
    p.add_argument(
        "--state",
        metavar="URL",
        default=None,
        help="where the write journal and the OAuth grants live (also INVOICE_MCP_STATE): sqlite:///PATH or postgresql://…",
    )
    p.add_argument("--read-only", action="store_true", help="expose only read tools (also INVOICE_MCP_READ_ONLY=1)")
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=LEVELS,
        default=None,
        help="stderr log level (default WARNING for stdio, INFO for http)",
    )
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="default stdio")
    _http_arguments(p)
    _commands(p.add_subparsers(dest="command", metavar="COMMAND"))
    return p


def _http_arguments(p: argparse.ArgumentParser) -> None:
    """The options of --transport http. Those that configure `HTTPOptions` are stored under its
    field names (`_http_options` copies them over)."""
    p.add_argument("--host", default="127.0.0.1", help="http: interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="http: port (default 8000; 0 picks a free one)")
    for flag, dest, metavar, what in (
        ("--allowed-host", "allowed_hosts", "NAME", "Host header to accept, e.g. mcp.example.com"),
        ("--allowed-origin", "allowed_origins", "ORIGIN", "browser Origin to accept, e.g. https://app.example.com"),
    ):
        p.add_argument(
            flag, dest=dest, action="append", default=[], metavar=metavar, help=f"http: extra {what} (repeatable)"
        )
    p.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="http: allow a non-loopback bind without INVOICE_MCP_HTTP_TOKEN (only behind an authenticating proxy)",
    )
    p.add_argument(
        "--gateway",
        action="store_true",
        help="http: serve many accounts; each request brings its credentials in X-Alternative-Payments-* headers "
        "(also INVOICE_MCP_GATEWAY=1)",
    )
    p.add_argument(
        "--auth",
        choices=("bearer", "oauth"),
        default=None,
        help="http: bearer = INVOICE_MCP_HTTP_TOKEN (or none on loopback); oauth = sign-in for Claude.ai/ChatGPT "
        "connectors, each user linking their own API key (also INVOICE_MCP_AUTH)",
    )
    p.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="http, oauth: the https origin clients reach this server at, e.g. https://mcp.example.com",
    )
    _session_arguments(p)


def _session_arguments(p: argparse.ArgumentParser) -> None:
    """The bounds on MCP sessions over HTTP (`HTTPOptions`' field names, as in `_http_arguments`)."""
    p.add_argument(
        "--max-sessions",
        type=int,
        default=1000,
        metavar="N",
        help="http: most concurrent MCP sessions; one more gets 503 (default 1000)",
    )
    p.add_argument(
        "--max-sessions-per-tenant",
        dest="max_sessions_per_owner",
        type=int,
        default=None,
        metavar="N",
        help="http: most sessions one set of credentials holds (default: all; a tenth of --max-sessions "
        "with --gateway), so one caller cannot take everyone's",
    )
    p.add_argument(
        "--session-idle-timeout",
        dest="session_idle_timeout_s",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="http: close a session after this long without a request (default 600)",
    )


def _commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("demo", help="run a scripted assistant session against the embedded sandbox")
    sub.add_parser("check", help="validate settings, mint a token and read one page of invoices")
    jr = sub.add_parser("journal", help="the journal of writes this server made")
    jsub = jr.add_subparsers(dest="journal_command", metavar="ACTION", required=True)
    ex = jsub.add_parser("export", help="every write since a date, to standard output (for accountants)")
    ex.add_argument("--since", required=True, type=_date_arg, metavar="YYYY-MM-DD", help="first day (UTC)")
    ex.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="default jsonl; csv has a header")
    ex.add_argument("--state", dest="export_state", metavar="URL", default=None, help="as for the server")
    gr = sub.add_parser("grants", help="list or revoke the OAuth grants (--auth oauth)")
    gsub = gr.add_subparsers(dest="grants_command", metavar="ACTION", required=True)
    gl = gsub.add_parser("list", help="one grant per line, its ID first")
    gl.add_argument("--json", action="store_true", help="as a JSON array")
    gl.add_argument("--state", dest="grants_state", default=None, metavar="URL", help="as for the server")
    gv = gsub.add_parser("revoke", help="revoke a grant: its tokens stop working on every replica within seconds")
    gv.add_argument("grant_id", metavar="ID")
    gv.add_argument("--state", dest="grants_state", default=None, metavar="URL", help="as for the server")
    sb = sub.add_parser("sandbox", help="serve the sandbox API standalone until Ctrl-C")
    sb.add_argument("--host", dest="sandbox_host", metavar="HOST", default="127.0.0.1", help="default 127.0.0.1")
    sb.add_argument(
        "--port", dest="sandbox_port", metavar="PORT", type=int, default=8765, help="default 8765; 0 picks a free one"
    )
    ah = sub.add_parser("apphost", help="the test host page for the MCP Apps views, over the sandbox, until Ctrl-C")
    ah.add_argument("--port", dest="apphost_port", metavar="PORT", type=int, default=8766, help="default 8766")
    ah.add_argument(
        "--confirm",
        choices=("accept", "decline"),
        default="accept",
        help="how the host answers the server's confirmations (default accept)",
    )
    shots = sub.add_parser("screenshots", help="PNGs of the MCP Apps views in both themes (needs chromium)")
    shots.add_argument("out_dir", nargs="?", default="docs/screenshots", help="default docs/screenshots")


def _date_arg(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _print_error(message: str) -> None:
    print(f"invoice-mcp: {message}", file=sys.stderr, flush=True)


def _run_sandbox(host: str, port: int) -> int:
    from invoice_mcp.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox, SandboxConfig

    cid = os.environ.get("AP_CLIENT_ID", "").strip()
    secret = os.environ.get("AP_CLIENT_SECRET", "").strip()
    own = bool(cid and secret)
    config = SandboxConfig(host=host, port=port)
    if own:
        config.client_id, config.client_secret = cid, secret

    def ready(url: str) -> None:
        print(f"Sandbox API listening on {url}", flush=True)
        if own:
            print(f"Credentials: AP_CLIENT_ID={cid} with AP_CLIENT_SECRET from your environment", flush=True)
        else:
            print(f"Credentials: AP_CLIENT_ID={DEMO_CLIENT_ID} AP_CLIENT_SECRET={DEMO_CLIENT_SECRET}", flush=True)
        print(f"Point the server at it with AP_BASE_URL={url}; Ctrl-C stops it.", flush=True)

    try:
        Sandbox(config).serve_forever(on_ready=ready)
    except OSError as exc:
        _print_error(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        return 2
    return 0


class _Refused(Exception):
    """The server cannot start as configured; the message says why (printed, exit code 2)."""


def _serve(args: argparse.Namespace, redactor: RedactingFilter, level: str) -> int:
    sandbox = None
    env: dict[str, str] | None = None  # None: the real environment and ./.env
    try:
        if args.sandbox:
            sandbox, env = _start_sandbox()
        oauth_mode = _oauth_mode(args)
        settings = _settings(args, env, oauth_mode=oauth_mode)
        redactor.add_secret(settings.client_secret.get_secret_value())
        if settings.http_token is not None:
            redactor.add_secret(settings.http_token.get_secret_value())
        read_only = True if args.read_only else None
        if args.transport == "http":
            _serve_http(args, settings, read_only=read_only, level=level, oauth_mode=oauth_mode)
        else:
            from invoice_mcp.server import build_server

            build_server(settings, read_only=read_only, log_level=level).run()
        return 0
    except _Refused as exc:
        _print_error(str(exc))
        return 2
    finally:
        if sandbox is not None:
            sandbox.stop()


def _start_sandbox() -> tuple[Sandbox, dict[str, str]]:
    """A running embedded sandbox, and the environment that points the server at it."""
    from invoice_mcp.sandbox import Sandbox, SandboxConfig

    sandbox = Sandbox(SandboxConfig())
    url = sandbox.start()
    env = {
        **os.environ,
        "AP_CLIENT_ID": sandbox.config.client_id,
        "AP_CLIENT_SECRET": sandbox.config.client_secret,
        "AP_ENVIRONMENT": "demo",
        "AP_BASE_URL": url,
    }
    _print_error(f"using the embedded sandbox API at {url} (demo data; no real account is touched)")
    return sandbox, env


def _oauth_mode(args: argparse.Namespace) -> bool:
    """--auth / INVOICE_MCP_AUTH: True for OAuth sign-in, False for a bearer token (or none)."""
    auth = args.auth or os.environ.get("INVOICE_MCP_AUTH", "").strip().lower() or "bearer"
    if auth not in ("bearer", "oauth"):
        raise _Refused(f"INVOICE_MCP_AUTH must be bearer or oauth (got {auth!r})")
    if auth == "oauth" and (args.transport != "http" or args.gateway):
        raise _Refused("--auth oauth is for --transport http, without --gateway (each grant links its own API key)")
    return auth == "oauth"


def _settings(args: argparse.Namespace, env: dict[str, str] | None, *, oauth_mode: bool) -> Settings:
    """The settings, checked against the command line; their notices printed (not the sandbox's)."""
    try:
        settings = load_settings(env, gateway=True if args.gateway or oauth_mode else None)
    except SettingsError as exc:
        raise _Refused(str(exc)) from None
    if settings.gateway and not oauth_mode and (args.transport != "http" or args.sandbox):
        raise _Refused(
            "gateway mode (--gateway / INVOICE_MCP_GATEWAY) takes credentials from HTTP request headers: "
            "use it with --transport http, without --sandbox"
        )
    for notice in () if args.sandbox else settings.notices:
        _print_error(notice)
    return settings


def _serve_http(
    args: argparse.Namespace, settings: Settings, *, read_only: bool | None, level: str, oauth_mode: bool
) -> None:
    from invoice_mcp.faces.http import HTTPConfigError, HTTPOptions, serve_http

    opts = HTTPOptions(**{f.name: getattr(args, f.name) for f in fields(HTTPOptions) if hasattr(args, f.name)})
    setup = None
    if oauth_mode:
        from invoice_mcp.faces.oauth.setup import OAuthStartError, open_oauth

        try:
            setup = open_oauth(settings, public_url=args.public_url, state_url=args.state)
        except OAuthStartError as exc:
            raise _Refused(str(exc)) from None
    try:
        serve_http(settings, opts, read_only=read_only, log_level=level, oauth=setup)
    except HTTPConfigError as exc:
        raise _Refused(str(exc)) from None
    finally:
        if setup is not None:
            setup.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    if args.env_file is not None:
        # Through the environment, so every face (server, check) and any child process sees it.
        os.environ[ENV_FILE_VAR] = os.path.abspath(args.env_file)
    if args.state is not None:
        os.environ["INVOICE_MCP_STATE"] = args.state  # the flag wins over the environment, as for --env-file
    try:
        if args.command == "demo":
            setup_logging(args.log_level or "WARNING")
            from invoice_mcp.faces.demo import main as demo

            return demo()
        if args.command == "check":
            setup_logging(args.log_level or "WARNING")
            from invoice_mcp.faces.check import run_check

            return run_check()
        if args.command == "apphost":
            setup_logging(args.log_level or "WARNING")
            from invoice_mcp.faces.apphost import serve as apphost

            return apphost(args.apphost_port, args.confirm)
        if args.command == "screenshots":
            setup_logging(args.log_level or "WARNING")
            from invoice_mcp.faces.apphost import screenshots

            for path in screenshots(args.out_dir):
                print(path, flush=True)
            return 0
        if args.command == "journal":
            setup_logging(args.log_level or "WARNING")
            from invoice_mcp.faces.journal_export import export

            return export(args.export_state or args.state, args.since, args.format)
        if args.command == "grants":
            setup_logging(args.log_level or "WARNING")
            from invoice_mcp.faces.oauth.setup import run_grants

            return run_grants(args.grants_command, args.grants_state or args.state, args)
        if args.command == "sandbox":
            setup_logging(args.log_level or "WARNING")
            return _run_sandbox(args.sandbox_host, args.sandbox_port)
        level = args.log_level or ("INFO" if args.transport == "http" else "WARNING")
        return _serve(args, setup_logging(level), level)
    except KeyboardInterrupt:
        return 130
