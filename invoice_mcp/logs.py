"""Logging to stderr only, with secrets masked in every record.

Stdout is the MCP wire on stdio, so nothing may log there. Every handler gets a
`RedactingFilter` that masks:

* bearer/basic credentials (``Authorization: Bearer xxx``) and ``access_token`` values;
* the gateway's credential headers (``X-Alternative-Payments-Client-Id``/``-Secret``), in any
  of the shapes a header is printed in (``name: value``, ``'name': 'value'``, ``(b'name', b'value')``);
* the literal secrets it was given (the API client secret, the HTTP bearer token);
* in records of our own loggers (``invoice_mcp.*``, and the SDK's ``mcp.*`` which logs our
  tool failures at INFO), the path and query of every ``http(s)://`` URL: payment and PDF
  links are bearer secrets, their host is kept for diagnosis. A record logged with
  ``extra={"keep_urls": True}`` (our own start-up banner) keeps its URLs.

``httpx``/``httpcore`` are held at WARNING because their INFO lines print full request URLs.

`redact_url` is how a state-store or Redis URL is shown (start-up lines, error messages): the
place kept, any password replaced.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"

_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=-]+)")
_TOKEN_FIELD = re.compile(r"(?i)(access_token|client_secret|refresh_token)([\"']?\s*[:=]\s*[\"']?)[^\"'\s,&}]+")
_CRED_HEADER = re.compile(
    r"(?i)(x-alternative-payments-client-(?:id|secret))([\"']?\s*[:=,]\s*b?[\"']?)[^\"'\s,&})\]]+"
)
_URL = re.compile(r"(https?://[^/\s?#]+)[/?#]\S*")
_URL_LOGGERS = ("invoice_mcp", "mcp")
_NOISY = ("httpx", "httpcore")


def _ours(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in _URL_LOGGERS)


def _looks_like_token(word: str) -> bool:
    """A credential, not an English word ("bearer token required"): long, or with digits/symbols."""
    return len(word) >= 20 or (len(word) >= 6 and not word.isalpha())


def _mask_credential(m: re.Match[str]) -> str:
    return f"{m.group(1)}{m.group(2)}{MASK}" if _looks_like_token(m.group(3)) else m.group(0)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and formatted traceback) with secrets masked.

    Always returns True: it edits records, it never drops them."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        for s in secrets:
            self.add_secret(s)

    def add_secret(self, secret: str | None) -> None:
        """Mask this exact string from now on (ignored when empty or too short to be a secret)."""
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def redact(self, text: str, *, urls: bool) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(s, MASK)
        text = _BEARER.sub(_mask_credential, text)
        text = _TOKEN_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
        text = _CRED_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
        if urls:
            text = _URL.sub(lambda m: f"{m.group(1)}/{MASK}", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        urls = _ours(record.name) and not getattr(record, "keep_urls", False)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = str(record.msg)
        record.msg = self.redact(message, urls=urls)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text, urls=urls)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info, urls=urls)
        return True


def setup_logging(level: str | int = "WARNING", secrets: Iterable[str] = ()) -> RedactingFilter:
    """Route all logging to one stderr handler with redaction; returns the filter so
    secrets known later (after settings load) can be added with `add_secret`."""
    redactor = RedactingFilter(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    protect_all_handlers(redactor)
    return redactor


def protect_all_handlers(redactor: RedactingFilter) -> None:
    """Attach the filter to every handler any logger has now (libraries may add their own)."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    for lg in loggers:
        for h in lg.handlers:
            if redactor not in h.filters:
                h.addFilter(redactor)


def redact_url(url: str) -> str:
    """The URL with any password (userinfo or ?password=) replaced by ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
        query = urlencode(
            [(k, "***" if "pass" in k.lower() else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
            safe="*",
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "<unparseable URL>"
