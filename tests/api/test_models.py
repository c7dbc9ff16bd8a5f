"""Wire models: tolerant parsing of the shapes the API may send (non-objects, odd line items,
loose error bodies) and the POST body of a new invoice."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from invoice_mcp.api.models import ErrorBody, Invoice, LineItem, NewInvoice, NewLineItem


@pytest.mark.parametrize("model", [Invoice, LineItem])
def test_a_row_that_is_not_an_object_is_a_validation_error(model: type[Invoice] | type[LineItem]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate("not an object")


def test_a_line_item_without_quantity_is_not_invalid() -> None:
    li = LineItem.model_validate({"description": "Hours", "amount": "12.50"})
    assert (li.quantity, li.amount, li.invalid_amounts) == (None, Decimal("12.50"), [])


def test_line_items_that_are_not_a_list_are_dropped_and_reported() -> None:
    inv = Invoice.model_validate({"id": "inv_1", "total": 5, "line_items": {"description": "x"}})
    assert inv.line_items is None
    assert inv.invalid_amounts == ["line_items"]
    assert inv.has_invalid_amounts
    assert inv.total == Decimal(5)


def test_an_error_body_that_is_not_an_object_parses_empty() -> None:
    body = ErrorBody.model_validate(["boom"])
    assert (body.code, body.message, body.validation_errors) == (None, None, None)


def test_error_body_fields_of_any_shape_become_text() -> None:
    body = ErrorBody.model_validate({"code": 422, "message": None, "validation_errors": ["a", ["b", "c"]]})
    assert body.code == "422" and body.message is None
    assert body.validation_errors == {"0": "a", "1": "b; c"}


def test_a_scalar_validation_error_is_filed_under_request() -> None:
    body = ErrorBody.model_validate({"validation_errors": 42})
    assert body.validation_errors == {"request": "42"}


def test_new_invoice_body_carries_the_optional_fields_only_when_set() -> None:
    line = NewLineItem(description="Hours", amount=Decimal("10.10"), quantity=3)
    bare = NewInvoice(customer_id="cus_1", line_items=[line]).to_json()
    assert "due_date" not in bare and "exclude_from_autopay" not in bare
    full = NewInvoice(customer_id="cus_1", line_items=[line], due_date="2026-12-01", exclude_from_autopay=False)
    body = full.to_json()
    assert body["due_date"] == "2026-12-01"
    assert body["exclude_from_autopay"] is False
    assert body["line_items"] == [{"description": "Hours", "amount": 10.1, "quantity": 3}]
