"""Schema compaction and the small renderers: each shape they meet gives the documented result."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from invoice_mcp.api.errors import APIError, NotFoundError, UpstreamError
from invoice_mcp.api.models import Invoice
from invoice_mcp.server.errors import message
from invoice_mcp.server.render import DATA_NOTE, detail, detail_text, list_cells, list_item
from invoice_mcp.server.sdk_adapter import compact_schema, shallow_output_schema


def test_shallow_output_schema_keeps_top_level_types_only() -> None:
    schema = {
        "type": "object",
        "$defs": {"Row": {"type": "object"}},
        "properties": {
            "rows": {"type": "array", "items": {"$ref": "#/$defs/Row"}},
            "row": {"$ref": "#/$defs/Row"},
            "note": {"type": ["string", "null"]},
            "amount": {"type": ["number", "integer", "null"], "enum": [1, 2]},
            "status": {"type": "string", "enum": ["open", "paid"]},
            "either": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "mixed": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "loose": {"anyOf": [{"type": "string"}, {"not": {}}]},
            "odd": True,
        },
    }
    out = shallow_output_schema(schema)
    assert "$defs" not in out
    assert out["properties"] == {
        "rows": {"type": "array"},
        "row": {"type": "object"},
        "note": {"type": "string"},
        "amount": {"type": ["number", "integer"]},
        "status": {"type": "string"},
        "either": {"type": "string"},
        "mixed": {"type": ["string", "integer"]},
        "loose": {"anyOf": [{"type": "string"}, {"not": {}}]},
        "odd": True,
    }


def test_shallow_output_schema_without_properties_is_left_alone() -> None:
    schema = {"type": "object", "$defs": {"X": {}}, "description": "free-form"}
    assert shallow_output_schema(schema) == {"type": "object", "description": "free-form"}


def test_output_schemas_drop_closed_objects_and_keep_untyped_nullables() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]}},
        "required": ["tags"],
        "title": "Out",
    }
    out = compact_schema(schema, inputs=False)
    assert out == {
        "type": "object",
        "properties": {"tags": {"type": ["array", "null"], "items": {"type": "string"}}},
    }
    untyped = compact_schema({"anyOf": [{"$ref": "#/$defs/Row"}, {"type": "null"}]}, inputs=False)
    assert untyped == {"anyOf": [{"$ref": "#/$defs/Row"}, {"type": "null"}]}  # null still allowed


def test_list_cells_give_compact_days_and_pass_odd_dates_through() -> None:
    inv = Invoice(
        invoice_number="INV-1",
        status="paid",
        total=Decimal(10),
        created_at="2026-11-23T10:00:00Z",
        due_date="2026-1x-05",
    )
    cells = list_cells(list_item(inv, {}, date(2026, 11, 25)))
    assert cells[4] == 20261123
    assert cells[5] == "2026-1x-05"


def test_detail_text_without_memo_or_lines_has_no_data_note() -> None:
    text = detail_text(detail(Invoice(id="inv_1", status="open", total=Decimal(5), line_items=[]), "Acme"))
    assert DATA_NOTE not in text
    with_memo = detail_text(detail(Invoice(id="inv_1", status="open", memo="pay soon"), "Acme"))
    assert DATA_NOTE in with_memo


def test_error_messages_for_not_found_and_unclassified_api_errors() -> None:
    nf = message(NotFoundError("no invoice inv_9"))
    assert nf.startswith("not found (no invoice inv_9)") and "list_invoices" in nf
    assert message(APIError("teapot\x1b[31m")) == "API error: teapot"  # the escape sequence is cleaned away
    assert "retry in a few seconds" in message(UpstreamError("502 bad gateway"))
