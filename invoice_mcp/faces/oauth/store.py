"""The grant store the authorization server uses (invoice_mcp.state.grants), re-exported here."""

from invoice_mcp.state.grants import (
    ClientRecord,
    CodeRecord,
    GrantRecord,
    GrantStore,
    MemoryGrantStore,
    SQLGrantStore,
    TokenRecord,
    digest,
)

__all__ = [
    "ClientRecord",
    "CodeRecord",
    "GrantRecord",
    "GrantStore",
    "MemoryGrantStore",
    "SQLGrantStore",
    "TokenRecord",
    "digest",
]
