"""The one token counting the benchmarks and the tests share: o200k_base (bpe-openai,
offline), compact JSON, and what a model reads from a tool result in each kind of host.

Hosts differ (see /work/shared/mcp-sdk.md, addendum): most pass only the text blocks;
Claude Code passes only `JSON.stringify(structuredContent)` when it is present; a host
could pass both. `seen(result, host)` is the string the model reads in each case.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any, Literal

Host = Literal["text", "structured", "both"]
HOSTS: tuple[Host, ...] = ("text", "structured", "both")


@cache
def _encoding() -> Any:
    import bpe_openai

    return bpe_openai.get_encoding("o200k_base")


def tok(s: str) -> int:
    """o200k_base tokens of `s`."""
    return len(_encoding().encode(s))


def compact(obj: Any) -> str:
    """Compact JSON, non-ASCII kept (as JSON.stringify and the API's own responses)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def text_of(res: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in res.content)


def seen(res: Any, host: Host) -> str:
    """What the model reads from a CallToolResult in a host of this kind."""
    structured = res.structured_content
    if host == "text" or structured is None:
        return text_of(res)
    if host == "structured":
        return compact(structured)
    return text_of(res) + "\n" + compact(structured)


def raw_tokens(objs: list[dict[str, Any]]) -> int:
    """Tokens of the API's own JSON for these objects (compact, as the API sends them)."""
    return sum(tok(compact(o)) for o in objs)


def tools_list_tokens(tools: list[Any]) -> int:
    """tools/list as compact wire JSON (the fields a client receives)."""
    keys = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
    wire = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    return tok(compact({"tools": [{k: t[k] for k in keys if k in t} for t in wire]}))
