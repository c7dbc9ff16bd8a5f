"""Customers: the cached directory, names for labelling rows, and name → customer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from cachetools import TTLCache

from invoice_mcp.api.errors import NotFoundError
from invoice_mcp.api.models import Customer
from invoice_mcp.service.cache import SingleFlightCache
from invoice_mcp.service.errors import AmbiguousCustomer, NotFound
from invoice_mcp.service.paging import walk

if TYPE_CHECKING:
    from invoice_mcp.api.client import APIClient

CUSTOMER_CACHE_TTL_S: Final = 300.0
MAX_CUSTOMER_PAGES: Final = 20


class Customers:
    def __init__(self, client: APIClient) -> None:
        self.client = client
        self._names: TTLCache[str, str] = TTLCache(4096, CUSTOMER_CACHE_TTL_S)
        self._directory: SingleFlightCache[str, tuple[list[Customer], bool]] = SingleFlightCache(
            1, CUSTOMER_CACHE_TTL_S
        )

    async def directory(self) -> list[Customer]:
        """Every customer (up to 20 pages), cached for five minutes."""
        return (await self.coverage())[0]

    async def coverage(self) -> tuple[list[Customer], bool]:
        """The directory and whether it is partial (the account has more than 20 pages of
        customers: the rest are not in it, and whoever uses it must say so)."""
        return await self._directory.get("all", self._load)

    async def _load(self) -> tuple[list[Customer], bool]:
        customers: list[Customer] = []
        more = False
        async for page in walk(lambda after: self.client.list_customers(after=after), max_pages=MAX_CUSTOMER_PAGES):
            customers.extend(page.data)
            more = bool(page.has_next_page and page.end_cursor)
        self._remember(customers)
        return customers, more

    def _remember(self, customers: list[Customer]) -> None:
        for c in customers:
            if c.id and c.name:
                self._names[c.id] = c.name

    async def names(self, ids: set[str]) -> dict[str, str]:
        """Names for labelling rows: one directory fetch serves a whole chunk."""
        if any(i not in self._names for i in ids):
            await self.directory()
        return {i: self._names[i] for i in ids if i in self._names}

    async def name(self, customer_id: str | None) -> str | None:
        if not customer_id:
            return None
        names = await self.names({customer_id})
        if customer_id in names:
            return names[customer_id]
        try:
            c = await self.client.get_customer(customer_id)
        except NotFoundError:
            return None
        if c.name:
            self._names[customer_id] = c.name
        return c.name

    async def find(self, name: str) -> list[Customer]:
        return (await self.search(name))[0]

    async def search(self, name: str) -> tuple[list[Customer], bool]:
        """The API's `company_name` matching rules are unknown: take what it returns,
        then keep case-insensitive substring matches; fall back to the directory. The flag says
        the answer may be incomplete (more API matches than one page, or a partial directory)."""
        needle = name.casefold().strip()
        found: dict[str, Customer] = {}
        page = await self.client.list_customers(company_name=name)
        partial = bool(page.has_next_page)
        for c in page.data:
            if c.id and needle in (c.name or "").casefold():
                found[c.id] = c
        if not found:
            directory, partial = await self.coverage()
            for c in directory:
                if c.id and needle in (c.name or "").casefold():
                    found[c.id] = c
        self._remember(list(found.values()))
        return sorted(found.values(), key=lambda c: (c.name or "").casefold()), partial

    async def resolve(self, name: str) -> Customer:
        """The one customer a name means; `AmbiguousCustomer` when the user must choose."""
        matches = await self.find(name)
        exact = [c for c in matches if (c.name or "").casefold() == name.casefold().strip()]
        if len(exact) == 1:
            return exact[0]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFound("customer", name, by_name=True)
        raise AmbiguousCustomer(name, exact or matches)
