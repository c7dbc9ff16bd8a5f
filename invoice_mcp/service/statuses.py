"""What an invoice status means for money owed.

The API's status enum is open: values are passed through untouched and new ones may appear. The
rule here is the one every summary and prompt uses:

* settled (not owed): paid, void/voided, canceled/cancelled, uncollectible, written_off/written-off;
* apart (neither owed nor settled, reported separately): draft (not yet issued), archived (hidden);
* owed: open, overdue, partially_paid, and any status not listed above (better to show money
  that may be due than to hide it; summaries name such statuses).
"""

from __future__ import annotations

from typing import Final

SETTLED: Final = frozenset(
    {"paid", "void", "voided", "canceled", "cancelled", "uncollectible", "written_off", "written-off"}
)
APART: Final = frozenset({"draft", "archived"})
OWED_KNOWN: Final = frozenset({"open", "overdue", "partially_paid"})
PARTIAL: Final = frozenset({"partially_paid"})
"""Owed statuses under which an invoice may already carry succeeded payments."""


def normalize(status: str | None) -> str:
    return (status or "").strip().lower()


def is_settled(status: str | None) -> bool:
    s = normalize(status)
    return s in SETTLED or s.replace("-", "_").replace(" ", "_") in SETTLED


def is_apart(status: str | None) -> bool:
    return normalize(status) in APART


def is_owed(status: str | None) -> bool:
    """Owed unless settled or apart (draft, archived). Unknown statuses count as owed."""
    return not is_settled(status) and not is_apart(status)


def is_unknown(status: str | None) -> bool:
    """A status this server has no rule for (counted as owed, and named in summaries)."""
    return is_owed(status) and normalize(status) not in OWED_KNOWN


def may_have_payments(status: str | None) -> bool:
    """Whether an owed invoice's balance can differ from its total: a partial-payment status, or a
    status nobody documented. Open and overdue invoices have no money applied (an invoice with
    money applied but not settled is partially_paid), so their balance is their total."""
    return normalize(status) in PARTIAL or is_unknown(status)
