"""Property-based fuzzing of every tool's arguments through a live MCP session.

Strategies come partly from each tool's advertised `inputSchema` (so valid calls are exercised
too) and partly from hand-written nasty values: wrong types, empty and huge strings, control and
invisible characters, path tricks in ids, impossible dates, silly amounts, tampered cursors.

For every generated call:
* the result is either a clean `is_error` (no traceback, no pydantic URL, no echo of huge input,
  never the SDK's sanitised "crash" text) or a correct result that matches the output schema;
* an invalid call (one the tool's own input contract rejects) sends **no** request upstream
  (the sandbox's arrival counter does not move);
* every request that does leave goes to one of the API's routes, with exactly one
  percent-escaped id segment that decodes to a valid id.

Hypothesis drives the examples; each test function runs them all in one MCP session, held open in
an anyio blocking portal (the sandbox serves from its own thread).
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import jsonschema
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from pydantic import ValidationError

from invoice_mcp.api.settings import Settings
from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server.app import build_server, cursor_key
from invoice_mcp.server.inputs import ID_PATTERN
from invoice_mcp.server.registry import TOOLS
from invoice_mcp.service.cursors import CursorCodec, CursorError

from .conftest import settings_for, text_of

pytestmark = pytest.mark.slow

EXAMPLES = 150
"""Hypothesis examples per tool (a fixed budget keeps the suite fast and its cost predictable)."""

SPECS = {t.name: t for t in TOOLS}

# -- the API's routes: exactly one escaped id segment where an id goes -----------------------------

SEG = r"(?!\.\.?$)[A-Za-z0-9_.~%-]+"
ROUTES: list[tuple[str, re.Pattern[str]]] = [
    (m, re.compile(p))
    for m, p in [
        ("POST", r"/oauth/token"),
        ("GET", r"/invoices"),
        ("POST", r"/invoices"),
        ("GET", rf"/invoices/(?P<id>{SEG})"),
        ("DELETE", rf"/invoices/(?P<id>{SEG})"),
        ("POST", rf"/invoices/(?P<id>{SEG})/restore"),
        ("GET", rf"/invoices/(?P<id>{SEG})/payment-link"),
        ("GET", rf"/invoices/(?P<id>{SEG})/pdf-link"),
        ("GET", r"/customers"),
        ("GET", rf"/customers/(?P<id>{SEG})"),
        ("GET", r"/payments"),
        ("GET", rf"/payments/(?P<id>{SEG})"),
    ]
]


def allowed(method: str, raw_path: str) -> bool:
    for m, pattern in ROUTES:
        hit = pattern.fullmatch(raw_path)
        if m == method and hit:
            seg = hit.groupdict().get("id")
            return seg is None or re.fullmatch(ID_PATTERN, unquote(seg)) is not None
    return False


def test_route_allow_list_itself() -> None:
    assert allowed("GET", "/invoices/inv_1") and allowed("GET", "/invoices/a%3Ab/pdf-link")
    for bad in ["/invoices/..", "/invoices/a/b", "/invoices/%2e%2e", "/invoices/a%2Fb", "/invoices//x", "/admin"]:
        assert not allowed("GET", bad), bad
    assert not allowed("PUT", "/invoices/inv_1")


# -- harness -----------------------------------------------------------------------------------------


@dataclass
class Live:
    portal: BlockingPortal
    client: Client
    sb: Sandbox
    settings: Settings
    schemas: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any] | None]
    fuzzed: int = 0

    def arrivals(self) -> int:
        """Requests that reached the sandbox so far (counted on arrival, before any answer)."""
        return self.sb._app.log._seq

    def call(self, tool: str, args: dict[str, Any]) -> Any:
        return self.portal.call(self.client.call_tool, tool, args)


@pytest.fixture
def live(sandbox: Sandbox, record_property: Callable[[str, object], None]) -> Iterator[Live]:
    s = settings_for(sandbox)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(Client(build_server(s))) as client:
        tools = portal.call(client.list_tools).tools
        lv = Live(
            portal,
            client,
            sandbox,
            s,
            {t.name: t.input_schema for t in tools},
            {t.name: t.output_schema for t in tools},
        )
        yield lv
    record_property("fuzzed", lv.fuzzed)
    bad = [(r.method, r.raw_path) for r in sandbox.requests() if not allowed(r.method, r.raw_path)]
    assert not bad, f"requests outside the API's routes: {bad[:5]}"


def contract_rejects(lv: Live, tool: str, args: dict[str, Any]) -> bool:
    """True when the tool's input contract rejects `args` before anything needs the API: unknown
    arguments, schema/validator failures, an impossible as_of, a cursor that is not one of ours."""
    spec = SPECS[tool]
    if set(args) - set(spec.input.model_fields):
        return True
    try:
        model = spec.input.model_validate(_sdk_preparse(args, spec.input))
    except ValidationError:
        return True
    as_of = getattr(model, "as_of", None)
    if as_of is not None:
        try:
            datetime.date.fromisoformat(as_of)
        except ValueError:
            return True
    cursor = getattr(model, "cursor", None)
    if cursor is not None:
        try:
            CursorCodec(cursor_key(lv.settings)).decode(cursor, {})
        except CursorError:
            return True
    return False


def _sdk_preparse(args: dict[str, Any], model: Any) -> dict[str, Any]:
    """The SDK parses JSON-in-a-string for non-string parameters (clients that stringify lists)."""
    out = dict(args)
    for k, v in args.items():
        field = model.model_fields.get(k)
        if field is not None and isinstance(v, str) and field.annotation is not str:
            try:
                parsed = json.loads(v)
            except (ValueError, RecursionError):
                continue
            if not isinstance(parsed, str | int | float):
                out[k] = parsed
    return out


def check(lv: Live, tool: str, args: dict[str, Any], *, invalid: bool | None = None) -> Any:
    """One fuzzed call and every property it must satisfy."""
    lv.fuzzed += 1
    rejects = contract_rejects(lv, tool, args) if invalid is None else invalid
    before = lv.arrivals()
    res = lv.call(tool, args)
    sent = lv.arrivals() - before
    text = text_of(res)
    assert "Traceback" not in text and "errors.pydantic.dev" not in text and "input_value=" not in text, text
    if res.is_error:
        assert text.strip() not in (f"Error executing tool {tool}", ""), f"crash on {args!r}"
        assert len(text) < 2000, f"error echoes its input ({len(text)} chars)"
    else:
        assert res.structured_content is not None
        schema = lv.outputs[tool]
        if schema:
            jsonschema.validate(res.structured_content, schema)
    if rejects:
        assert res.is_error, f"{tool} accepted invalid {args!r}: {text[:200]}"
        assert sent == 0, f"{tool}: {sent} request(s) left for invalid {args!r}"
    return res


# -- strategies --------------------------------------------------------------------------------------

PATH_TRICKS = [
    "../",
    "..",
    ".",
    "?",
    "#",
    "%2F",
    "/",
    "\\",
    "a/b",
    "../customers",
    "inv_1/../../oauth/token",
    "inv_1?limit=1",
    "inv_1#frag",
    "inv%2F1",
    "inv\\1",
    "%2e%2e",
    "inv_1/restore",
    " inv_1",
    "inv_1\n",
    "inv_1\x00",
    "INV-1/..",
]
NASTY_STRINGS = [
    *PATH_TRICKS,
    "",
    " ",
    "\t\n",
    "x" * 10_000,
    "\x1b[31mred\x1b[0m",
    "\u200b\u200d\ufeff",
    "\u202eevil\u202c",
    "ｉｎｖ＿１",
    "😀" * 30,
    "null",
    "NaN",
    "2026-02-30",
    "2025-02-29",
    "2026-13-01",
    "2026-01-01T25:61:00Z",
    "INV-",
    "INV-0",
    "INV-99999999999999",
    "'; DROP TABLE invoices; --",
    "{{7*7}}",
]
NASTY_NUMBERS: list[Any] = [
    0,
    -1,
    -0.01,
    0.001,
    1.005,
    0.1 + 0.2,
    1e-9,
    1.5,
    10_000_000,
    10_000_000.01,
    1e308,
    -1e308,
    2**31,
    2**53 + 1,
    2**64,
    10**30,
]
WRONG_TYPES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
IMPOSSIBLE_DATES = st.builds(
    lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}",
    st.integers(0, 9999),
    st.integers(0, 13),
    st.sampled_from([0, 29, 30, 31, 32]),
)


def _bounded(strategy: st.SearchStrategy[str], lo: int, hi: int) -> st.SearchStrategy[str]:
    return strategy.filter(lambda s: lo <= len(s) <= hi)


def from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for a (compact) JSON schema: the subset the tools use."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        lo, hi = schema.get("minLength", 0), schema.get("maxLength", 300)
        if "pattern" in schema:
            return _bounded(st.from_regex(schema["pattern"], fullmatch=True), lo, hi)
        return st.text(min_size=lo, max_size=min(hi, 300))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        return st.one_of(
            st.floats(lo, schema.get("maximum"), allow_nan=False, allow_infinity=False),
            st.integers(1, 10_000).map(lambda c: c / 100),
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(
            from_schema(schema["items"], defs), min_size=schema.get("minItems", 0), max_size=min(3, schema["maxItems"])
        )
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: good(k, v, defs, {}) for k, v in props.items() if k in required},
            optional={k: good(k, v, defs, {}) for k, v in props.items() if k not in required},
        )
    return WRONG_TYPES


DAYS = st.dates(datetime.date(2020, 1, 1), datetime.date(2030, 12, 31))
DATE_OR_TIME = st.one_of(
    DAYS.map(datetime.date.isoformat),
    st.datetimes(datetime.datetime(2020, 1, 1), datetime.datetime(2030, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
    ),
)


def good(name: str, schema: dict[str, Any], defs: dict[str, Any], real: dict[str, list[str]]) -> Any:
    """A value the contract accepts: from the schema, a real object's id/name, or a real date."""
    if name in ("as_of", "due_date"):
        return DAYS.map(datetime.date.isoformat)
    if "created_at" in name or "due_date" in name:
        return DATE_OR_TIME
    if name == "amount":
        return st.integers(1, 1_000_000_000).map(lambda cents: cents / 100)
    options = [from_schema(schema, defs)]
    if name in ("invoice", "customer_id"):
        options.append(_bounded(st.from_regex(ID_PATTERN, fullmatch=True), 1, 128))
    if name in real:
        options.append(st.sampled_from(real[name]))
    return st.one_of(*options)


def bad(name: str, schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A value that is probably wrong: the wrong type, a nasty string or number, an impossible date."""
    options: list[st.SearchStrategy[Any]] = [WRONG_TYPES, st.sampled_from(NASTY_STRINGS)]
    kind = schema.get("type")
    if kind in ("integer", "number"):
        options.append(st.sampled_from(NASTY_NUMBERS))
    if "date" in name or "created_at" in name or name == "as_of":
        options.append(IMPOSSIBLE_DATES)
    if name == "line_items":
        item = defs["LineItemIn"]["properties"]
        nasty_item = st.fixed_dictionaries(
            {
                "description": st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=5)),
                "amount": st.one_of(st.sampled_from(NASTY_NUMBERS), from_schema(item["amount"], defs), WRONG_TYPES),
                "quantity": st.one_of(st.sampled_from(NASTY_NUMBERS), from_schema(item["quantity"], defs), WRONG_TYPES),
            }
        )
        options.append(st.lists(nasty_item, min_size=0, max_size=2))
        options.append(st.lists(nasty_item, min_size=1, max_size=1).map(json.dumps))
    return st.one_of(*options)


UNKNOWN_KEYS = st.dictionaries(
    st.sampled_from(["bogus", "statuss", "customer_name", "invoice_id", "id"]), WRONG_TYPES, min_size=1, max_size=1
)


def arguments(schema: dict[str, Any], real: dict[str, list[str]]) -> st.SearchStrategy[dict[str, Any]]:
    """A quarter each: valid arguments; valid but one field nasty; valid plus an unknown key; any mix."""
    defs = schema.get("$defs", {})
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    valid = st.fixed_dictionaries(
        {k: good(k, v, defs, real) for k, v in props.items() if k in required},
        optional={k: good(k, v, defs, real) for k, v in props.items() if k not in required},
    )
    one_bad = valid.flatmap(
        lambda d: st.sampled_from(sorted(props)).flatmap(lambda k: bad(k, props[k], defs).map(lambda v: {**d, k: v}))
    )
    plus_unknown = st.builds(lambda a, b: {**a, **b}, valid, UNKNOWN_KEYS)
    chaos = st.builds(
        lambda a, b: {**a, **b},
        st.fixed_dictionaries(
            {}, optional={k: st.one_of(good(k, v, defs, real), bad(k, v, defs)) for k, v in props.items()}
        ),
        st.one_of(st.just({}), UNKNOWN_KEYS),
    )
    return st.one_of(valid, one_bad, plus_unknown, chaos)


def real_refs(sb: Sandbox) -> dict[str, list[str]]:
    invoices = sb.invoices(include_archived=False)[:5]
    ids = [i["id"] for i in invoices] + [i["invoice_number"] for i in invoices]
    customers = sb.customers()
    return {
        "invoice": ids,
        "customer_id": [c["id"] for c in customers[:3]],
        "customer": [c["name"] for c in customers[:3]] + [c["name"][:4] for c in customers[:3]],
        "name": [c["name"][:5] for c in customers[:3]],
    }


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


# -- tests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", [t.name for t in TOOLS])
def test_fuzz_tool_arguments(live: Live, tool: str) -> None:
    strategy = arguments(live.schemas[tool], real_refs(live.sb))

    @FUZZ
    @given(args=strategy)
    def one(args: dict[str, Any]) -> None:
        res = check(live, tool, args)
        if tool == "get_invoice" and not res.is_error:
            ref = args["invoice"].strip()
            assert ref in (res.structured_content["id"], res.structured_content["invoice_number"])

    one()


ID_FIELDS = [
    *((t, "invoice") for t in ["get_invoice", "archive_invoice", "restore_invoice"]),
    *((t, "invoice") for t in ["get_invoice_payment_link", "get_invoice_pdf_link"]),
    ("create_invoice", "customer_id"),
    ("list_invoices", "customer_id"),
    ("summarize_invoices", "customer_id"),
    ("list_payments", "invoice"),
    ("list_payments", "customer_id"),
]


def with_id(tool: str, field: str, value: str) -> dict[str, Any]:
    if tool == "create_invoice":
        return {field: value, "line_items": [{"description": "a", "amount": 1, "quantity": 1}], "dry_run": True}
    return {field: value}


@pytest.mark.parametrize(("tool", "field"), ID_FIELDS)
def test_path_tricks_in_ids_never_leave(live: Live, tool: str, field: str) -> None:
    for trick in [*PATH_TRICKS, "x" * 129, ""]:
        res = check(live, tool, with_id(tool, field, trick), invalid=True)
        assert res.is_error
    # odd-but-legal ids leave as one escaped segment (the API answers 404, reported cleanly)
    for odd in ["a..", "a:b", "A.B_C-D", "x" * 128]:
        res = check(live, tool, with_id(tool, field, odd), invalid=False)
        if field == "invoice":
            assert res.is_error and "no invoice" in text_of(res)


def tamper(cursor: str, how: str, i: int) -> str:
    i %= len(cursor)
    if how == "flip":
        c = cursor[i]
        return cursor[:i] + ("A" if c != "A" else "B") + cursor[i + 1 :]
    if how == "truncate":
        return cursor[: max(1, i)]
    if how == "garbage":
        return base64.urlsafe_b64encode(cursor[i:].encode()[::-1] or b"x").decode()
    if how == "append":
        return cursor + "AAAA"
    if how == "json":
        return base64.urlsafe_b64encode(b'{"m":"F","a":null,"o":0,"f":{},"b":0}').decode()
    raise AssertionError(how)


def test_fuzz_cursors(live: Live) -> None:
    """Cursors tampered with, truncated, garbage, or from a query with other filters."""
    first = live.call("list_invoices", {"limit": 5}).structured_content
    open_ = live.call("list_invoices", {"limit": 5, "status": "open"}).structured_content
    plain, filtered = first["next_cursor"], open_["next_cursor"]
    assert plain and filtered
    codec = CursorCodec(cursor_key(live.settings))

    @FUZZ
    @given(
        base=st.sampled_from([plain, filtered]),
        how=st.sampled_from(["flip", "truncate", "garbage", "append", "json", "none"]),
        i=st.integers(0, 10_000),
        filters=st.sampled_from([{}, {"status": "open"}, {"status": "paid"}, {"customer_id": "cus_x"}]),
        limit=st.sampled_from([None, 1, 5, 100]),
    )
    def one(base: str, how: str, i: int, filters: dict[str, str], limit: int | None) -> None:
        cursor = base if how == "none" else tamper(base, how, i)
        args = {"cursor": cursor, **filters, **({"limit": limit} if limit else {})}
        try:
            _, own, _ = codec.decode(cursor, {})
            usable = not filters or filters == own
        except CursorError:
            usable = False
        res = check(live, "list_invoices", args, invalid=not usable)
        if not usable:
            assert "cursor" in text_of(res)
        else:
            assert not res.is_error, text_of(res)

    one()
    # a cursor from another query is refused with a message saying so
    res = check(live, "list_invoices", {"cursor": filtered, "status": "paid"}, invalid=True)
    assert "different filters" in text_of(res)
