"""Input pieces shared by several tools: invoice references, dates, and the list queries.

The pieces live with the queries they make up (service/query.py): the query a list tool accepts
is the very object its cursor seals and the service reads. They are named here for the tools."""

from __future__ import annotations

from invoice_mcp.service.query import (
    ID_PATTERN,
    STATUS_EXAMPLES,
    CustomerId,
    DateFrom,
    DateTo,
    InvoiceQuery,
    InvoiceRef,
    PaymentQuery,
    Status,
    Strict,
    check_id,
    real_date,
    to_rfc3339,
)

__all__ = [
    "ID_PATTERN",
    "STATUS_EXAMPLES",
    "CustomerId",
    "DateFrom",
    "DateTo",
    "InvoiceQuery",
    "InvoiceRef",
    "PaymentQuery",
    "Status",
    "Strict",
    "check_id",
    "real_date",
    "to_rfc3339",
]
