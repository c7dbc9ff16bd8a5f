"""OAuth clients: how a client is known (a Client ID Metadata Document at an https URL, or a
dynamic registration), and how its redirect URIs are matched.

Client ID Metadata Documents are fetched with SSRF protection, since the URL is chosen by
whoever opens the authorization endpoint:

* https only (plain http only with INVOICE_MCP_OAUTH_ALLOW_LOOPBACK=1, and then only on loopback);
* the host is resolved once and every address must be public (no private, loopback,
  link-local, multicast or reserved range); the connection goes to the checked address
  (TLS still verifies the name), so a second DNS answer cannot redirect it;
* no redirects followed, at most ``MAX_DOCUMENT_BYTES`` read, all within ``FETCH_TIMEOUT_S``;
* cached per the document's ``Cache-Control`` (``max-age``, ``no-store``), at most a day.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx
from mcp.shared.auth import InvalidRedirectUriError, OAuthClientInformationFull
from pydantic import AnyUrl, ValidationError

from invoice_mcp.faces.oauth.config import SCOPES, is_loopback_host

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 64 * 1024
FETCH_TIMEOUT_S = 5.0
DEFAULT_CACHE_S = 300.0
MAX_CACHE_S = 86400.0
MAX_CACHED = 512

Resolver = Callable[[str, int], Awaitable[list[str]]]


class ClientDocumentError(Exception):
    """The client-id metadata document cannot be used; the message says why (no secret in it)."""


def _same_redirect(registered: str, asked: str) -> bool:
    """Exact match; for a loopback http redirect any port (RFC 8252 §7.3: native apps pick a free one)."""
    if registered == asked:
        return True
    r, a = urlsplit(registered), urlsplit(asked)
    if r.scheme != "http" or a.scheme != "http" or r.hostname is None or not is_loopback_host(r.hostname):
        return False
    if r.username or a.username or r.password or a.password:
        return False
    return (r.hostname, r.path or "/", r.query, r.fragment) == (a.hostname, a.path or "/", a.query, a.fragment)


class RegisteredClient(OAuthClientInformationFull):
    """A client with exact redirect-URI matching (loopback ports aside, RFC 8252)."""

    def validate_redirect_uri(self, redirect_uri: AnyUrl | None) -> AnyUrl:
        if redirect_uri is None:
            return super().validate_redirect_uri(None)
        asked = str(redirect_uri)
        for registered in self.redirect_uris or []:
            if _same_redirect(str(registered), asked):
                return redirect_uri
        raise InvalidRedirectUriError("redirect_uri is not one this client registered")


def check_redirect_uris(uris: list[str]) -> None:
    """Registered redirect URIs: https, or http on loopback (native apps); no fragment."""
    if not uris:
        raise ValueError("redirect_uris is required")
    for uri in uris:
        parts = urlsplit(uri)
        if parts.fragment:
            raise ValueError("a redirect URI must not have a fragment")
        if parts.scheme == "https" and parts.hostname:
            continue
        if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
            continue
        if parts.scheme not in ("http", "https", "javascript", "data", "file", "") and "." in parts.scheme:
            continue  # a private-use scheme of a native app (com.example.app:/callback)
        raise ValueError("each redirect URI must be https://, http:// on loopback, or an app's own scheme")


def is_metadata_url(client_id: str) -> bool:
    return client_id.startswith(("https://", "http://"))


def _cache_seconds(header: str | None) -> float:
    if not header:
        return DEFAULT_CACHE_S
    low = header.lower()
    if "no-store" in low or "no-cache" in low:
        return 0.0
    m = re.search(r"max-age\s*=\s*(\d+)", low)
    if m:
        return min(float(m.group(1)), MAX_CACHE_S)
    return DEFAULT_CACHE_S


async def _resolve(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _allowed_address(ip: str, allow_loopback: bool) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return allow_loopback
    return addr.is_global and not addr.is_multicast


@dataclass
class _Cached:
    client: RegisteredClient
    until: float


class ClientDocuments:
    """Fetches and caches Client ID Metadata Documents."""

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        clock: Callable[[], float] = time.monotonic,
        resolver: Resolver = _resolve,
        max_bytes: int = MAX_DOCUMENT_BYTES,
        timeout_s: float = FETCH_TIMEOUT_S,
    ) -> None:
        self.allow_loopback = allow_loopback
        self._clock = clock
        self._resolver = resolver
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._cache: dict[str, _Cached] = {}
        self.fetches = 0

    def _check_url(self, url: str) -> tuple[str, int, bool]:
        parts = urlsplit(url)
        host = parts.hostname
        if not host or parts.username or parts.password or parts.fragment:
            raise ClientDocumentError("the client_id URL must be https://host/path, without credentials or fragment")
        if parts.path in ("", "/"):
            raise ClientDocumentError("the client_id URL must have a path (https://host/client.json)")
        if parts.scheme == "https":
            return host, parts.port or 443, True
        if parts.scheme == "http" and self.allow_loopback and is_loopback_host(host):
            return host, parts.port or 80, False
        raise ClientDocumentError("the client_id URL must be https://")

    async def get(self, url: str) -> RegisteredClient:
        hit = self._cache.get(url)
        now = self._clock()
        if hit is not None and hit.until > now:
            return hit.client
        client, ttl = await self._fetch(url)
        if ttl > 0:
            if len(self._cache) >= MAX_CACHED:
                self._cache.pop(next(iter(self._cache)))
            self._cache[url] = _Cached(client, now + ttl)
        return client

    async def _fetch(self, url: str) -> tuple[RegisteredClient, float]:
        host, port, tls = self._check_url(url)
        self.fetches += 1
        try:
            with anyio.fail_after(self.timeout_s):
                try:
                    ipaddress.ip_address(host.strip("[]"))
                    addresses = [host.strip("[]")]
                except ValueError:
                    addresses = await self._resolver(host, port)
                if not addresses:
                    raise ClientDocumentError("the client_id URL's host does not resolve")
                bad = [a for a in addresses if not _allowed_address(a, self.allow_loopback)]
                if bad:
                    raise ClientDocumentError(
                        "the client_id URL's host resolves to a private, loopback or reserved address; refused"
                    )
                body, cache_control = await self._download(url, addresses[0], host, port, tls)
        except TimeoutError:
            raise ClientDocumentError(
                f"the client metadata document did not arrive within {self.timeout_s:g} s"
            ) from None
        except OSError:
            raise ClientDocumentError("the client metadata document could not be fetched") from None
        return self._parse(url, body), _cache_seconds(cache_control)

    async def _download(self, url: str, address: str, host: str, port: int, tls: bool) -> tuple[bytes, str | None]:
        parts = urlsplit(url)
        literal = f"[{address}]" if ":" in address else address
        target = f"{parts.scheme}://{literal}:{port}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "Accept": "application/json"}
        extensions = {"sni_hostname": host} if tls else {}
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False, trust_env=False) as http:
            try:
                request = http.build_request("GET", target, headers=headers, extensions=extensions)
                resp = await http.send(request, stream=True)
            except httpx.HTTPError:
                raise ClientDocumentError("the client metadata document could not be fetched") from None
            try:
                if resp.status_code != 200:
                    raise ClientDocumentError(
                        f"the client metadata document answered HTTP {resp.status_code} (redirects are not followed)"
                    )
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise ClientDocumentError(f"the client metadata document is larger than {self.max_bytes} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ClientDocumentError(f"the client metadata document is larger than {self.max_bytes} bytes")
                    chunks.append(chunk)
            except httpx.HTTPError:
                raise ClientDocumentError("the client metadata document could not be read") from None
            finally:
                await resp.aclose()
        return b"".join(chunks), resp.headers.get("cache-control")

    def _parse(self, url: str, body: bytes) -> RegisteredClient:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise ClientDocumentError("the client metadata document is not JSON") from None
        if not isinstance(doc, dict):
            raise ClientDocumentError("the client metadata document is not a JSON object")
        if doc.get("client_id") != url:
            raise ClientDocumentError("the client metadata document's client_id is not its own URL")
        method = doc.get("token_endpoint_auth_method") or "none"
        if method != "none":
            raise ClientDocumentError(
                "a client identified by a metadata document must be public (token_endpoint_auth_method none)"
            )
        uris = doc.get("redirect_uris")
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise ClientDocumentError("the client metadata document has no redirect_uris list")
        try:
            check_redirect_uris(uris)
        except ValueError as exc:
            raise ClientDocumentError(f"the client metadata document: {exc}") from None
        name = doc.get("client_name")
        try:
            return RegisteredClient(
                client_id=url,
                client_name=name[:100] if isinstance(name, str) else None,
                redirect_uris=uris,
                token_endpoint_auth_method="none",
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                scope=" ".join(SCOPES),
            )
        except ValidationError:
            raise ClientDocumentError("the client metadata document has invalid fields") from None
