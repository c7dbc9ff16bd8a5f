"""Which invoice statuses mean money is still owed: the one place that decides it.

The API's status set is open (new values ship without a version bump), so the rule is
written the other way round: a status is *settled* when it is one of the known closed
states below; anything else, including a status never seen before, counts as owed
(better to show money that may be due than to hide it)."""

from __future__ import annotations

from typing import Final

SETTLED: Final = frozenset(
    {
        "paid",
        "void",
        "voided",
        "canceled",
        "cancelled",
        "uncollectible",
        "written_off",
        "written-off",
        "archived",
        "draft",
    }
)
"""Statuses whose total is not owed: settled, cancelled, written off, hidden (archived) or not yet issued (draft)."""


def is_owed(status: str | None) -> bool:
    """True unless `status` is settled (case-insensitive). Unknown or missing statuses are owed."""
    return (status or "").strip().lower() not in SETTLED


# -- balances: the owed set split further, for summaries and payments ----------------

APART: Final = frozenset({"draft", "archived"})
"""In SETTLED (nothing owed) but reported apart: not yet issued, or hidden."""
OWED_KNOWN: Final = frozenset({"open", "overdue", "partially_paid"})
PARTIAL: Final = frozenset({"partially_paid"})
"""Owed statuses under which an invoice may already carry succeeded payments."""


def normalize(status: str | None) -> str:
    return (status or "").strip().lower()


def is_apart(status: str | None) -> bool:
    return normalize(status) in APART


def is_settled(status: str | None) -> bool:
    """Closed for good (paid, void, canceled, uncollectible, written off): not owed, not apart."""
    return not is_owed(status) and not is_apart(status)


def is_unknown(status: str | None) -> bool:
    """A status with no rule here (counted as owed, and named in summaries)."""
    return is_owed(status) and normalize(status) not in OWED_KNOWN


def may_have_payments(status: str | None) -> bool:
    """Whether an owed invoice's balance can differ from its total: a partial-payment status, or a
    status nobody documented. Open and overdue invoices have no money applied (an invoice with
    money applied but not settled is partially_paid), so their balance is their total."""
    return normalize(status) in PARTIAL or is_unknown(status)
