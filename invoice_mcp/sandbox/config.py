"""Sandbox configuration and the clock that makes seeded data reproducible."""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass

DEMO_CLIENT_ID = "sandbox-client-id"
DEMO_CLIENT_SECRET = "sandbox-client-secret"


@dataclass(frozen=True)
class TenantConfig:
    """One more partner account (credential pair with its own customers, invoices and payments).

    Unset fields are derived from the sandbox config and the tenant's position ``k`` (1 for the
    first extra tenant): seed ``config.seed + 1000 * k``, the same counts, company names from a
    second catalogue (suffixed `` T<k>`` from the second extra tenant on) and invoice numbers
    from ``INV-<k * 1000000 + 1001>``, so two tenants' data are visibly different.
    """

    client_id: str
    client_secret: str
    seed: int | None = None
    invoices: int | None = None
    customers: int | None = None
    company_names: tuple[str, ...] | None = None
    first_invoice_number: int | None = None

    @classmethod
    def numbered(cls, k: int) -> TenantConfig:
        """Tenant ``k`` (>= 1) with credentials ``sandbox-client-id-<k>`` / ``sandbox-client-secret-<k>``

        (``dataclasses.replace`` it to change counts or the seed)."""
        if k < 1:
            raise ValueError("extra tenants are numbered from 1")
        return cls(f"{DEMO_CLIENT_ID}-{k}", f"{DEMO_CLIENT_SECRET}-{k}")


@dataclass
class SandboxConfig:
    """Everything that shapes a sandbox; the same config (with ``today`` fixed) gives the same data.

    ``client_id``/``client_secret``/``seed`` are the default tenant (its data is the same with or
    without extra tenants); ``tenants`` adds more credential pairs, each with its own data.
    """

    client_id: str = DEMO_CLIENT_ID
    client_secret: str = DEMO_CLIENT_SECRET
    seed: int = 7
    invoices: int = 300
    customers: int = 12
    today: dt.date | None = None
    """Fixed "today" for reproducible data; None means the real UTC date."""
    rate_limit: float | None = 5.0
    """Requests per second (token bucket with capacity = rate); None disables limiting."""
    token_ttl_s: float = 3600.0
    testing: bool = False
    """Enables fault injection via ``Sandbox.faults``."""
    tenants: tuple[TenantConfig, ...] = ()
    """Extra partner accounts served next to the default one (distinct client ids)."""
    ticker: Callable[[], float] | None = None
    """Monotonic seconds for request arrival times (rate limit, token expiry, the log); None means
    ``time.monotonic``. Tests inject a frozen or stepped clock to make the limiter deterministic."""
    host: str = "127.0.0.1"
    port: int = 0


class Clock:
    """Wall clock of the simulated API.

    With a fixed ``today`` the clock starts at noon UTC of that date and then advances
    monotonically, so invoices created through the API are always newer than the seeded ones
    (which all predate ``today``), and a run of any realistic length stays on that day, whatever
    the real date and time are. The API tells its time in each response's ``Date`` header.
    """

    START_OF_FIXED_DAY = dt.time(12, 0, 0)

    def __init__(self, today: dt.date | None) -> None:
        self._fixed = today is not None
        self._base = 0.0
        if today is not None:
            self._base = dt.datetime.combine(today, self.START_OF_FIXED_DAY, dt.UTC).timestamp()
        self._mono0 = time.monotonic()

    def now(self) -> float:
        """Epoch seconds (UTC)."""
        if not self._fixed:
            return time.time()
        return self._base + (time.monotonic() - self._mono0)

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.now(), dt.UTC).date()

    def http_date(self) -> str:
        """The ``Date`` header value for a response sent now (RFC 9110 IMF-fixdate)."""
        return email.utils.formatdate(self.now(), usegmt=True)
