"""Partner accounts ("tenants"): one credential pair each, with its own data, tokens and rate limit."""

from __future__ import annotations

import hmac
import threading

from .auth import TokenBucket, TokenStore
from .config import Clock, SandboxConfig
from .data import COMPANY_NAMES, FIRST_INVOICE_NUMBER, TENANT_COMPANY_NAMES
from .store import Store


class Tenant:
    """One API key: its credentials, its data (``store``), its tokens and its 5 req/s bucket."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        seed: int,
        customers: int,
        invoices: int,
        names: tuple[str, ...],
        first_number: int,
        config: SandboxConfig,
    ) -> None:
        self.client_id = client_id
        self.seed = seed
        self._counts = (customers, invoices)
        self._names = names
        self._first_number = first_number
        self._rate = config.rate_limit
        self.tokens = TokenStore(client_id, client_secret, config.token_ttl_s)
        self.store: Store
        self.bucket: TokenBucket | None

    def reset(self, clock: Clock) -> None:
        customers, invoices = self._counts
        self.store = Store(
            seed=self.seed,
            customers=customers,
            invoices=invoices,
            clock=clock,
            names=self._names,
            first_number=self._first_number,
        )
        self.tokens.reset()
        self.bucket = TokenBucket(self._rate) if self._rate is not None else None


def build_tenants(config: SandboxConfig) -> dict[str, Tenant]:
    """The default tenant first (exactly the single-tenant sandbox's data), then ``config.tenants``."""
    out: dict[str, Tenant] = {
        config.client_id: Tenant(
            client_id=config.client_id,
            client_secret=config.client_secret,
            seed=config.seed,
            customers=config.customers,
            invoices=config.invoices,
            names=COMPANY_NAMES,
            first_number=FIRST_INVOICE_NUMBER,
            config=config,
        )
    }
    for k, extra in enumerate(config.tenants, 1):
        if extra.client_id in out:
            raise ValueError(f"duplicate sandbox client id: {extra.client_id!r}")
        names = extra.company_names or (
            TENANT_COMPANY_NAMES if k == 1 else tuple(f"{name} T{k}" for name in TENANT_COMPANY_NAMES)
        )
        out[extra.client_id] = Tenant(
            client_id=extra.client_id,
            client_secret=extra.client_secret,
            seed=extra.seed if extra.seed is not None else config.seed + 1000 * k,
            customers=extra.customers if extra.customers is not None else config.customers,
            invoices=extra.invoices if extra.invoices is not None else config.invoices,
            names=names,
            first_number=(
                extra.first_invoice_number
                if extra.first_invoice_number is not None
                else k * 1_000_000 + FIRST_INVOICE_NUMBER
            ),
            config=config,
        )
    return out


class Tenants:
    """All tenants plus the token -> tenant map (kept for expired tokens too, so their requests
    are still logged and rate-limited under the key that minted them)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.by_id = build_tenants(config)
        self.default = next(iter(self.by_id.values()))
        self._lock = threading.Lock()
        self._owner: dict[str, Tenant] = {}
        self._issued: list[str] = []

    def reset(self, clock: Clock) -> None:
        for tenant in self.by_id.values():
            tenant.reset(clock)
        with self._lock:
            self._owner.clear()
            self._issued.clear()

    def get(self, client_id: str | None) -> Tenant | None:
        """The tenant whose client id this is (constant-time per comparison), or None."""
        if client_id is None:
            return None
        found: Tenant | None = None
        for cid, tenant in self.by_id.items():
            if hmac.compare_digest(cid.encode(), client_id.encode()):
                found = tenant
        return found

    def authenticate(self, creds: tuple[str, str] | None) -> Tenant | None:
        """The tenant these Basic credentials belong to, if the secret is right."""
        tenant = self.get(creds[0]) if creds is not None else None
        return tenant if tenant is not None and tenant.tokens.credentials_ok(creds) else None

    def issue(self, tenant: Tenant, now: float) -> str:
        token = tenant.tokens.issue(now)
        with self._lock:
            self._owner[token] = tenant
            self._issued.append(token)
        return token

    def owner(self, token: str | None) -> Tenant | None:
        if token is None:
            return None
        with self._lock:
            return self._owner.get(token)

    def expire_all(self) -> None:
        for tenant in self.by_id.values():
            tenant.tokens.expire_all()

    @property
    def issued(self) -> list[str]:
        """Every token issued since the last reset, in issue order, across tenants."""
        with self._lock:
            return list(self._issued)
