"""The capabilities the server advertises are the same in both protocol eras, and each one works.

Legacy clients read them from the ``initialize`` answer (2025-11-25), modern ones from
``server/discover`` (2026-07-28). Nothing here publishes change events (the tool, prompt and
resource lists are fixed, and resource updates are not pushed), so neither era may claim
``listChanged`` or ``resources.subscribe``. MCP Apps is advertised in both: as the extension
(2026-07-28) and, since the 2025-11-25 capabilities have no ``extensions`` field, under
``experimental``.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client, MCPError
from mcp.types import METHOD_NOT_FOUND, PromptReference

from invoice_mcp.api.settings import Settings
from invoice_mcp.server import build_server

pytestmark = pytest.mark.anyio

EXPECTED = {
    "completions": {},
    "prompts": {"listChanged": False},
    "resources": {"listChanged": False, "subscribe": False},
    "tools": {"listChanged": False},
}


async def answers(settings: Settings) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    async with Client(build_server(settings), mode="legacy") as legacy:
        init = legacy.session.initialize_result
        assert init is not None and init.protocol_version == "2025-11-25"
        out["initialize"] = init.capabilities.model_dump(by_alias=True, exclude_none=True)
    async with Client(build_server(settings)) as modern:
        disc = modern.session.discover_result
        assert disc is not None and "2026-07-28" in disc.supported_versions
        out["server/discover"] = disc.capabilities.model_dump(by_alias=True, exclude_none=True)
    return out


APPS = {"io.modelcontextprotocol/ui": {}}


async def test_both_eras_advertise_the_same_honest_capabilities(settings: Settings) -> None:
    got = await answers(settings)
    assert got["initialize"] == {**EXPECTED, "experimental": APPS}
    assert got["server/discover"] == {**EXPECTED, "extensions": APPS}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_every_advertised_capability_is_served(settings: Settings, mode: str) -> None:
    async with Client(build_server(settings), mode=mode) as c:  # type: ignore[arg-type]
        assert (await c.list_tools()).tools
        assert (await c.list_prompts()).prompts
        assert (await c.list_resource_templates()).resource_templates
        await c.list_resources()
        done = await c.complete(PromptReference(name="overdue_followup"), {"name": "tone", "value": "p"})
        assert done.completion.values == ["polite"]


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_what_is_not_advertised_is_not_served(settings: Settings) -> None:
    async with Client(build_server(settings), mode="legacy") as c:
        with pytest.raises(MCPError) as info:
            await c.session.subscribe_resource("invoice://INV-1001")
        assert info.value.error.code == METHOD_NOT_FOUND
        with pytest.raises(MCPError) as info:
            await c.session.set_logging_level("info")
        assert info.value.error.code == METHOD_NOT_FOUND


async def test_a_second_initialize_is_refused_and_confirmation_still_asked(settings: Settings, sandbox: Any) -> None:
    """Capabilities are fixed by a session's first initialize: a second one (here claiming no
    elicitation, which would let a create skip the user's confirmation) is a JSON-RPC error,
    and the next create still asks the user."""
    from mcp import types
    from mcp.client import ClientRequestContext

    asked: list[str] = []

    async def decline(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="decline")

    async with Client(build_server(settings), mode="legacy", elicitation_callback=decline) as c:
        again = types.InitializeRequest(
            params=types.InitializeRequestParams(
                protocol_version="2025-11-25",
                capabilities=types.ClientCapabilities(),
                client_info=types.Implementation(name="intruder", version="1"),
            )
        )
        with pytest.raises(MCPError, match="already initialized"):
            await c.session.send_request(again, types.InitializeResult)
        args = {
            "customer_id": sandbox.customers()[0]["id"],
            "line_items": [{"description": "Seats", "amount": 10, "quantity": 1}],
        }
        r = await c.call_tool("create_invoice", args)
    assert len(asked) == 1, f"the create must ask the user: {r}"
    assert r.structured_content is None or r.structured_content.get("outcome") != "created"
