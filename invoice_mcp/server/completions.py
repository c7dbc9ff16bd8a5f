"""``completion/complete``: suggestions while a user fills a prompt argument or a resource template.

What is completed (everything else gets an empty answer, as the SDK does, so a client that asks
about an unknown prompt or argument simply sees no suggestions):

* prompt arguments named ``customer`` (draft_invoice, overdue_followup): customer names from the
  service's cached customer directory (one directory load serves every completion for
  ``CUSTOMER_CACHE_TTL_S``; an account with up to 100 customers loads it in one request);
* prompt arguments with a fixed list of ``choices`` (overdue_followup's ``tone``): that list;
* prompt arguments with the ``YEAR_MONTH`` format (month_end_review's ``month``): the current month and
  the ``RECENT_MONTHS - 1`` before it, newest first;
* the ``ref`` of ``invoice://{ref}``: invoice numbers from the newest page of invoices (one list
  request of ``PAGE_SIZE``, cached for ``INVOICE_NUMBERS_TTL_S``; the API only filters numbers
  exactly, so older invoices are not offered and ``hasMore`` says so).

Matching is case-insensitive; values that start with what was typed come first, then values that
contain it elsewhere. At most ``MAX_VALUES`` values are sent, with ``total`` and ``hasMore``. Names
and numbers come from the API, so they are cleaned (control, invisible and bidi characters removed,
whitespace collapsed) and bounded like every other API string.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, Final

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CompleteRequestParams,
    CompleteResult,
    Completion,
    PromptReference,
    ResourceTemplateReference,
)

from invoice_mcp.api.errors import APIError
from invoice_mcp.api.models import PAGE_SIZE
from invoice_mcp.clock import system_now
from invoice_mcp.server.errors import api_words
from invoice_mcp.server.prompts import YEAR_MONTH, PromptArgumentSpec, PromptSpec, prompt_specs
from invoice_mcp.service.cache import SingleFlightCache
from invoice_mcp.text import clean

if TYPE_CHECKING:
    from mcp.server import MCPServer

    from invoice_mcp.server.state import AppState
    from invoice_mcp.service import InvoiceService

log = logging.getLogger("invoice_mcp.completions")

MAX_VALUES: Final = 100
"""The protocol's cap on values in one completion answer."""
MAX_TYPED: Final = 100
"""Characters of the typed value that are matched (longer input cannot match a bounded value anyway)."""
NAME_MAX: Final = 120
NUMBER_MAX: Final = 40
RECENT_MONTHS: Final = 24
INVOICE_NUMBERS_TTL_S: Final = 30.0
INVOICE_TEMPLATE: Final = "invoice://{ref}"
INVOICE_TEMPLATE_ARG: Final = "ref"
CUSTOMER_ARGUMENTS: Final = frozenset({"customer", "customer_name"})

EMPTY: Final = Completion(values=[], total=0, has_more=False)


def rank(candidates: Iterable[str], typed: str) -> list[str]:
    """Candidates matching ``typed`` case-insensitively: prefix matches first, then the ones that
    contain it elsewhere, each group in the given order; case-insensitive duplicates dropped."""
    needle = typed.casefold()
    prefix: list[str] = []
    inner: list[str] = []
    seen: set[str] = set()
    for value in candidates:
        key = value.casefold()
        if not value or key in seen:
            continue
        if key.startswith(needle):
            prefix.append(value)
        elif needle in key:
            inner.append(value)
        else:
            continue
        seen.add(key)
    return prefix + inner


def bounded(matches: Sequence[str], *, more_elsewhere: bool = False) -> Completion:
    """At most MAX_VALUES values. ``more_elsewhere``: matches may exist beyond what was searched,
    so the total is unknown and hasMore is set."""
    return Completion(
        values=list(matches[:MAX_VALUES]),
        total=None if more_elsewhere else len(matches),
        has_more=more_elsewhere or len(matches) > MAX_VALUES,
    )


def recent_months(today: date, count: int = RECENT_MONTHS) -> list[str]:
    """``count`` months as YYYY-MM, the current one first."""
    year, month = today.year, today.month
    out: list[str] = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out


NumberCache = SingleFlightCache[str, tuple[list[str], bool]]
"""The newest page of invoice numbers of one service (and whether older invoices exist)."""


class Completer:
    """Answers completion/complete for the prompts and the invoice resource template."""

    def __init__(
        self,
        templates: Iterable[PromptSpec],
        *,
        today: Callable[[], date] | None = None,
        timer: Callable[[], float] = time.monotonic,
        numbers_ttl_s: float = INVOICE_NUMBERS_TTL_S,
    ) -> None:
        self._prompts = {t.name: {a.name: a for a in t.arguments} for t in templates}
        self._today = today
        self._timer = timer
        self._numbers_ttl_s = numbers_ttl_s
        self._numbers: weakref.WeakKeyDictionary[InvoiceService, NumberCache] = weakref.WeakKeyDictionary()

    async def complete(
        self,
        app: AppState,
        ref: PromptReference | ResourceTemplateReference,
        name: str,
        value: str,
        headers: Mapping[str, str] | None = None,
    ) -> Completion:
        typed = clean(value[: MAX_TYPED * 4], MAX_TYPED * 4)[:MAX_TYPED]  # cut, never "…"-marked
        try:
            if isinstance(ref, PromptReference):
                spec = self._prompts.get(ref.name, {}).get(name)
                return EMPTY if spec is None else await self._prompt_argument(app, headers, spec, typed)
            if ref.uri == INVOICE_TEMPLATE and name == INVOICE_TEMPLATE_ARG:
                return await self._invoice_numbers(app.service_for_headers(headers), typed)
        except ToolError as exc:  # a gateway request without usable credentials
            raise MCPError(INVALID_PARAMS, f"no suggestions for {name!r}: {exc}") from None
        except APIError as exc:
            raise MCPError(
                INTERNAL_ERROR, f"no suggestions for {name!r}: the invoice API failed ({api_words(exc)})"
            ) from None
        return EMPTY

    async def _prompt_argument(
        self, app: AppState, headers: Mapping[str, str] | None, spec: PromptArgumentSpec, typed: str
    ) -> Completion:
        if spec.choices:
            return bounded(rank(spec.choices, typed))
        if spec.format == YEAR_MONTH:
            return bounded(rank(recent_months(self._month_of(app, headers)), typed))
        if spec.name in CUSTOMER_ARGUMENTS:
            directory, partial = await app.service_for_headers(headers).customer_coverage()
            names = sorted({clean(c.name, NAME_MAX) for c in directory if c.name}, key=str.casefold)
            return bounded(rank(names, typed), more_elsewhere=partial)
        return EMPTY

    def _month_of(self, app: AppState, headers: Mapping[str, str] | None) -> date:
        """Today on the account's API clock; a gateway request without credentials has no
        account, and then the host's clock answers."""
        if self._today is not None:
            return self._today()
        try:
            return app.service_for_headers(headers).today()
        except ToolError:
            return system_now().date()

    async def _invoice_numbers(self, svc: InvoiceService, typed: str) -> Completion:
        cache = self._numbers.get(svc)
        if cache is None:
            cache = self._numbers[svc] = SingleFlightCache(1, self._numbers_ttl_s, timer=self._timer)

        async def newest() -> tuple[list[str], bool]:
            page = await svc.client.list_invoices(limit=PAGE_SIZE)
            return [clean(i.invoice_number, NUMBER_MAX) for i in page.data if i.invoice_number], page.has_next_page

        hit = await cache.get("newest", newest)  # single flight: a burst of keystrokes costs one request
        numbers, older_exist = hit
        return bounded(rank(numbers, typed), more_elsewhere=older_exist)


def register_completions(server: MCPServer[Any], completer: Completer | None = None) -> Completer:
    """Serve completion/complete on ``server`` (which then advertises the completions capability
    in both protocol eras). Returns the completer (tests pass one with fixed clocks)."""
    comp = completer if completer is not None else Completer(prompt_specs())

    async def handler(ctx: ServerRequestContext[Any, Any], params: CompleteRequestParams) -> CompleteResult:
        app: AppState = ctx.lifespan_context
        headers = getattr(ctx.request, "headers", None)  # HTTP only; a gateway picks the tenant by them
        completion = await comp.complete(app, params.ref, params.argument.name, params.argument.value, headers)
        return CompleteResult(completion=completion)

    server._lowlevel_server.add_request_handler("completion/complete", CompleteRequestParams, handler)
    return comp
