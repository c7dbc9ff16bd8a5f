"""Token economy: what the model receives from our tools, against the raw API JSON and the SDK default.

Counts o200k_base tokens (bpe-openai, offline) through a real in-memory `mcp.Client` against a sandbox.
Run: .venv/bin/python bench/tokens.py
"""

from __future__ import annotations

from typing import Any

import anyio
import pydantic_core
from _common import sandbox, settings_for, table, verdict
from counting import compact, text_of, tok
from mcp import Client

from invoice_mcp.server import build_server

CHUNK = 25
CHUNKS = 4  # 100 invoices in list chunks
DETAILS = 25  # get_invoice calls
LIST_TARGET = 1 / 5
TOOLS_TARGET = 3000
"""Today's ten tools with the money arguments and fields (currency, balances owed, past due, payment
issues, preview warnings) stay within 3,000."""
TOOL_KEYS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


def sdk_default(structured: Any) -> str:
    """What MCPServer puts in the text block for a returned model: pydantic to_json(indent=2)."""
    return pydantic_core.to_json(structured, indent=2).decode()


VALIDATION_KEYS = frozenset({"pattern", "minLength", "maxLength"})


def strip_keys(schema: Any, keys: frozenset[str]) -> Any:
    if isinstance(schema, dict):
        return {k: strip_keys(v, keys) for k, v in schema.items() if k not in keys}
    if isinstance(schema, list):
        return [strip_keys(v, keys) for v in schema]
    return schema


def nullable_as_type_list(schema: Any) -> Any:
    """Equivalent JSON Schema: {"anyOf": [{"type": X}, {"type": "null"}]} -> {"type": [X, "null"]}."""
    if isinstance(schema, list):
        return [nullable_as_type_list(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: nullable_as_type_list(v) for k, v in schema.items()}
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and len(any_of) == 2 and {"type": "null"} in any_of:
        inner = next(v for v in any_of if v != {"type": "null"})
        if set(inner) == {"type"} and isinstance(inner["type"], str):
            del out["anyOf"]
            out["type"] = [inner["type"], "null"]
    return out


def tools_what_if(wire: list[dict[str, Any]]) -> list[list[object]]:
    """Where the tools/list tokens go, and what dropping some parts would save (measured, not applied)."""
    full = tok(compact({"tools": wire}))
    rows: list[list[object]] = []
    for key in TOOL_KEYS:
        part = sum(tok(compact(t[key])) for t in wire if key in t)
        rows.append([f"part: all {key} values", part, part / full])
    variants = {
        "variant: no outputSchema": [{k: v for k, v in t.items() if k != "outputSchema"} for t in wire],
        "variant: inputSchema without pattern/minLength/maxLength": [
            t | {"inputSchema": strip_keys(t["inputSchema"], VALIDATION_KEYS)} for t in wire
        ],
        "variant: outputSchema nullables as type: [X, null] (same schema)": [
            t | {"outputSchema": nullable_as_type_list(t["outputSchema"])} if "outputSchema" in t else t for t in wire
        ],
        "variant: no annotations": [{k: v for k, v in t.items() if k != "annotations"} for t in wire],
        "variant: model-facing only (name, description, inputSchema)": [
            {k: t[k] for k in ("name", "description", "inputSchema") if k in t} for t in wire
        ],
    }
    for name, tools in variants.items():
        n = tok(compact({"tools": tools}))
        rows.append([name, n, n / full])
    return rows


class Tally:
    def __init__(self) -> None:
        self.invoices = 0
        self.calls = 0
        self.text = 0
        self.structured = 0
        self.raw = 0
        self.default = 0

    def add(self, res: Any, raw_objs: list[dict[str, Any]], n: int) -> None:
        assert not res.is_error, text_of(res)
        self.calls += 1
        self.invoices += n
        self.text += tok(text_of(res))
        self.structured += tok(compact(res.structured_content))
        self.raw += sum(tok(compact(o)) for o in raw_objs)
        self.default += tok(sdk_default(res.structured_content))

    def row(self, name: str) -> list[object]:
        n = self.invoices
        return [
            name,
            self.calls,
            n,
            self.text / n,
            self.structured / n,
            self.raw / n,
            self.default / n,
            self.text / self.raw,
            self.structured / self.raw,
            self.text / self.default,
        ]


async def run() -> str:
    with sandbox(invoices=300) as sb:
        api = {inv["id"]: inv for inv in sb.invoices()}
        by_number = {inv["invoice_number"]: inv for inv in sb.invoices()}
        async with Client(build_server(settings_for(sb))) as client:
            tools = (await client.list_tools()).tools
            wire = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
            wire = [{k: t[k] for k in TOOL_KEYS if k in t} for t in wire]
            tools_tokens = tok(compact({"tools": wire}))
            what_if = tools_what_if(wire)
            per_tool = sorted(((tok(compact(t)), t["name"]) for t in wire), reverse=True)
            instructions = tok(client.instructions or "")

            lst, det, summ = Tally(), Tally(), Tally()
            cursor: str | None = None
            first_ids: list[str] = []
            for _ in range(CHUNKS):
                args: dict[str, Any] = {"limit": CHUNK} | ({"cursor": cursor} if cursor else {})
                res = await client.call_tool("list_invoices", args)
                ids = [by_number[r[0]]["id"] for r in res.structured_content["rows"]]
                first_ids = first_ids or ids
                lst.add(res, [api[i] for i in ids], len(ids))
                cursor = res.structured_content.get("next_cursor")
            for inv_id in first_ids[:DETAILS]:
                res = await client.call_tool("get_invoice", {"invoice": inv_id})
                det.add(res, [api[inv_id]], 1)
            res = await client.call_tool("summarize_invoices", {})
            live = [inv for inv in api.values() if inv["status"] != "archived"]
            assert res.structured_content["count"] == len(live)
            summ.add(res, live, len(live))

    list_ratio = lst.text / lst.raw
    structured_ratio = lst.structured / lst.raw
    out = [
        "### Tokens per invoice (o200k_base)",
        "",
        "text = the tool's text block; structured = structuredContent as compact JSON; raw = the API's JSON "
        "for the same invoices (compact); SDK default = indent=2 JSON of the structured content.",
        "",
        table(
            [
                "tool",
                "calls",
                "invoices",
                "text/inv",
                "structured/inv",
                "raw/inv",
                "SDK default/inv",
                "text ÷ raw",
                "structured ÷ raw",
                "text ÷ SDK default",
            ],
            [
                lst.row(f"list_invoices (chunks of {CHUNK})"),
                det.row("get_invoice"),
                summ.row("summarize_invoices (all)"),
            ],
        ),
        "",
        f"summarize_invoices answer: {summ.text:,} text tokens + {summ.structured:,} structured "
        f"for {summ.invoices:,} invoices whose raw JSON is {summ.raw:,} tokens.",
        "",
        "### tools/list",
        "",
        table(
            ["what", "tokens"],
            [
                [
                    "tools/list (all tools: name, title, description, inputSchema, outputSchema, annotations)",
                    tools_tokens,
                ],
                ["server instructions (sent once at connect)", instructions],
                *[[f"· {name}", n] for n, name in per_tool],
            ],
        ),
        "",
        "Where the tools/list tokens go (parts are token counts of the values alone; variants are the whole "
        "list re-counted without that part; ratio against the full list):",
        "",
        table(["part / variant", "tokens", "÷ full"], what_if),
        "",
        "### Targets",
        "",
        table(
            ["target", "measured", "result"],
            [
                ["list chunk text ≤ 1/5 of raw JSON", f"{list_ratio:.3f} × raw", verdict(list_ratio <= LIST_TARGET)],
                [
                    "list chunk structured content ≤ 1/5 of raw JSON",
                    f"{structured_ratio:.3f} × raw",
                    verdict(structured_ratio <= LIST_TARGET),
                ],
                ["tools/list ≤ 3,000 tokens", f"{tools_tokens:,}", verdict(tools_tokens <= TOOLS_TARGET)],
            ],
        ),
    ]
    return "\n".join(out)


def main() -> None:
    print("## Token economy (bench/tokens.py)\n")
    print(anyio.run(run))


if __name__ == "__main__":
    main()
