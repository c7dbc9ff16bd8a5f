"""The settled-status rule: known closed states are not owed, anything else is."""

from __future__ import annotations

import pytest

from invoice_mcp.service.statuses import SETTLED, is_owed


@pytest.mark.parametrize(
    "status",
    [
        "paid",
        "PAID",
        "void",
        "voided",
        "canceled",
        "cancelled",
        "uncollectible",
        "written_off",
        "written-off",
        "archived",
        "draft",
        " Paid ",
    ],
)
def test_settled_statuses_are_not_owed(status: str) -> None:
    assert not is_owed(status)


@pytest.mark.parametrize("status", ["open", "overdue", "partially_paid", "disputed", "sent", "", None])
def test_open_and_unknown_statuses_are_owed(status: str | None) -> None:
    assert is_owed(status)


def test_settled_set_is_lower_case() -> None:
    assert all(s == s.lower() for s in SETTLED)
