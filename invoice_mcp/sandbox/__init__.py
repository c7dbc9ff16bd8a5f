"""Embedded sandbox: an independent, seeded simulation of the Alternative Payments REST API.

It is deliberately a second implementation that shares nothing with the project's API client,
so that client bugs cannot be mirrored by the thing the client is tested against.
It serves customers, invoices and payments for one or several tenants (credential pairs, see
``TenantConfig``), each with its own seeded data, tokens and rate limit.
"""

from .config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SandboxConfig, TenantConfig
from .faults import Faults
from .log import RequestRecord
from .sandbox import Sandbox

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "Faults",
    "RequestRecord",
    "Sandbox",
    "SandboxConfig",
    "TenantConfig",
]
