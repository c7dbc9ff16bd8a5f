"""The server's durable state (write journal, OAuth grants, ...) behind one small interface.

Embedded SQLite in the user's data folder by default, Postgres for replicas; features declare
their own tables as a :class:`Schema` and never learn which engine runs them. Imports nothing of
MCP, the service or the faces.
"""

from invoice_mcp.logs import redact_url
from invoice_mcp.state.location import (
    ENV_VAR,
    Dialect,
    StateError,
    StateLocation,
    default_data_dir,
    parse_state_url,
)
from invoice_mcp.state.secrets import KEY_ENV, SecretBox, digest, open_secret_box, same_digest
from invoice_mcp.state.store import (
    AUTO_ID,
    LazyStore,
    Row,
    Schema,
    StateStore,
    Step,
    Tx,
    open_store,
    open_store_async,
    step,
)

__all__ = [
    "AUTO_ID",
    "ENV_VAR",
    "KEY_ENV",
    "Dialect",
    "LazyStore",
    "Row",
    "Schema",
    "SecretBox",
    "StateError",
    "StateLocation",
    "StateStore",
    "Step",
    "Tx",
    "default_data_dir",
    "digest",
    "open_secret_box",
    "open_store",
    "open_store_async",
    "parse_state_url",
    "redact_url",
    "same_digest",
    "step",
]
