"""The duplicate-create guard, end to end: MCP sessions against the sandbox over real HTTP,
counting the POSTs the sandbox received.

Concurrent identical creates in one server, two servers over one API (a restart or a replica
with no shared state), two processes sharing Redis, a create that timed out after sending,
near-identical bodies, and `allow_duplicate` as the explicit way through.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import ElicitResult

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.sandbox.log import RequestRecord
from invoice_mcp.server import build_server

from ..conftest import new_sandbox, settings_for, text_of
from ..procs import api_env, base_env

pytestmark = pytest.mark.anyio

Record = Callable[[str, object], None]


@pytest.fixture(scope="module")
def live_module() -> Iterator[Sandbox]:
    # The sandbox runs on the real clock (today=None): the guard's look at "invoices created
    # in the last minutes" compares its own clock with the API's, as in production.
    sb = new_sandbox(today=None)
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture
def sb(live_module: Sandbox) -> Sandbox:
    live_module.reset()
    return live_module


def posts(sb: Sandbox) -> list[RequestRecord]:
    return [r for r in sb.requests("POST", "/invoices") if r.path == "/invoices"]


def created(sb: Sandbox, description: str) -> list[dict[str, Any]]:
    return [i for i in sb.invoices() if any(li["description"] == description for li in i["line_items"])]


def args_for(sb: Sandbox, **extra: Any) -> dict[str, Any]:
    return {
        "customer_id": sb.customers()[2]["id"],
        "due_date": "2027-01-15",
        "line_items": [
            {"description": "Guarded seats", "amount": 10, "quantity": 3},
            {"description": "Setup fee", "amount": 99.5, "quantity": 1},
        ],
        **extra,
    }


async def settled(cond: Callable[[], bool], limit_s: float = 10.0) -> None:
    """Wait for the sandbox thread to reach a state (a condition, not a fixed sleep)."""
    with anyio.fail_after(limit_s):
        while not cond():  # noqa: ASYNC110 - set by the sandbox thread, no event to await
            await anyio.sleep(0.01)


def refused(res: Any) -> str:
    text = text_of(res)
    assert res.is_error, f"should have been refused: {text[:300]}"
    assert "not created" in text and "Traceback" not in text, text
    return text


async def test_twenty_concurrent_identical_creates_make_one_post(sb: Sandbox, record_property: Record) -> None:
    results: list[Any] = []
    async with Client(build_server(settings_for(sb))) as c:

        async def one() -> None:
            results.append(await c.call_tool("create_invoice", args_for(sb)))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
        ok = [r for r in results if not r.is_error]
        assert len(ok) == 1 and ok[0].structured_content["outcome"] == "created"
        number = ok[0].structured_content["invoice_number"]
        for r in results:
            if r.is_error:
                text = refused(r)
                assert "being created right now" in text or number in text, text
        # and afterwards too, now told which invoice it is
        later = refused(await c.call_tool("create_invoice", args_for(sb)))
        assert number in later and "allow_duplicate=true" in later
    assert len(posts(sb)) == 1 and len(created(sb, "Guarded seats")) == 1
    record_property("duplicates", {"concurrent": [21, len(posts(sb))]})


async def test_two_parallel_creates_both_approved_by_the_user(sb: Sandbox, record_property: Record) -> None:
    asked: list[str] = []

    async def approve(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"ok": True})

    results: list[Any] = []
    async with Client(build_server(settings_for(sb)), elicitation_callback=approve) as c:

        async def one() -> None:
            results.append(await c.call_tool("create_invoice", args_for(sb)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            tg.start_soon(one)
    assert len(asked) == 2, "both were put to the user (neither existed yet)"
    assert sorted(r.is_error for r in results) == [False, True]
    refused(next(r for r in results if r.is_error))
    assert len(posts(sb)) == 1
    record_property("duplicates", {"concurrent approved": [2, len(posts(sb))]})


async def test_second_server_over_the_same_api_refuses_from_the_api_itself(
    sb: Sandbox, record_property: Record
) -> None:
    """A restart or a replica without Redis: nothing shared but the API."""
    async with Client(build_server(settings_for(sb))) as a:
        first = await a.call_tool("create_invoice", args_for(sb))
        assert first.structured_content["outcome"] == "created"
    number = first.structured_content["invoice_number"]
    async with Client(build_server(settings_for(sb))) as b:
        text = refused(await b.call_tool("create_invoice", args_for(sb)))
        assert "the API already has" in text and number in text
        # the refusal is remembered: the quick check refuses before any API call
        before = len(sb.requests())
        refused(await b.call_tool("create_invoice", args_for(sb)))
        assert len(sb.requests()) == before
    assert len(posts(sb)) == 1
    record_property("duplicates", {"cross-instance": [3, len(posts(sb))]})


async def test_two_processes_sharing_redis_see_a_create_in_flight(
    sb: Sandbox, redis_url: str, record_property: Record
) -> None:
    """Process A's POST is held by the API; B's identical create must be refused while it is
    in flight, which only the shared reservation can know (the API has nothing yet)."""
    env = base_env(api_env(sb, INVOICE_MCP_REDIS_URL=redis_url))
    params = StdioServerParameters(command=sys.executable, args=["-m", "invoice_mcp"], env=env)
    args = args_for(sb, due_date="2027-02-01")
    out: dict[str, Any] = {}
    async with Client(params) as a, Client(params) as b:
        hold = sb.faults.hold_next(1, method="POST", path="/invoices")

        async def create_a() -> None:
            out["a"] = await a.call_tool("create_invoice", args)

        async with anyio.create_task_group() as tg:
            tg.start_soon(create_a)
            await settled(lambda: hold.arrived == 1)  # A's POST has reached the API and is held there
            assert posts(sb) == [] and created(sb, "Guarded seats") == []
            text = refused(await b.call_tool("create_invoice", args))
            assert "being created right now" in text
            hold.release()
        assert out["a"].structured_content["outcome"] == "created"
        number = out["a"].structured_content["invoice_number"]
        after = refused(await b.call_tool("create_invoice", args))
        assert number in after and "this server created" in after  # from the shared record
    assert len(posts(sb)) == 1 and len(created(sb, "Guarded seats")) == 1
    record_property("duplicates", {"cross-process (Redis)": [3, len(posts(sb))]})


@pytest.mark.slow
async def test_twenty_identical_creates_through_two_replicas_sharing_redis_make_one_post(
    sb: Sandbox, redis_url: str, record_property: Record
) -> None:
    """Two single-account processes on one Redis, 10 identical creates through each at once,
    the first POST held upstream for 1 s: one POST in the sandbox's request log, 19 refusals."""
    env = base_env(api_env(sb, INVOICE_MCP_REDIS_URL=redis_url))
    params = StdioServerParameters(command=sys.executable, args=["-m", "invoice_mcp"], env=env)
    args = args_for(sb, due_date="2027-02-15")
    results: list[Any] = []
    async with Client(params) as a, Client(params) as b:
        sb.faults.delay_next(1, 1.0, method="POST", path="/invoices")

        async def create(c: Client) -> None:
            results.append(await c.call_tool("create_invoice", args))

        async with anyio.create_task_group() as tg:
            for k in range(20):
                tg.start_soon(create, (a, b)[k % 2])
    assert len(posts(sb)) == 1 and len(created(sb, "Guarded seats")) == 1
    assert sum(not r.is_error for r in results) == 1
    for r in results:
        if r.is_error:
            refused(r)
    record_property("duplicates", {"two replicas (Redis), concurrent": [20, len(posts(sb))]})


@pytest.mark.parametrize("after_processing", [True, False], ids=["landed", "lost"])
async def test_create_that_timed_out_after_sending_is_not_repeated(
    sb: Sandbox, after_processing: bool, record_property: Record
) -> None:
    args = args_for(sb)
    customer_id = args["customer_id"]
    async with Client(build_server(settings_for(sb))) as c:
        sb.faults.drop_next(1, method="POST", path="/invoices", after_processing=after_processing)
        first = text_of(await c.call_tool("create_invoice", args))
        assert "may have been created" in first and "Do not retry" in first
        await settled(lambda: len(posts(sb)) == 1)
        retry = refused(await c.call_tool("create_invoice", args))
        if after_processing:  # it landed: the retry is told which invoice it is
            number = created(sb, "Guarded seats")[0]["invoice_number"]
            assert number in retry and "the API already has" in retry
        else:  # nothing to be found: still refused, with how to check
            assert "may have been created" in retry and "allow_duplicate=true" in retry
            assert f"list_invoices(customer_id={customer_id!r}, created_at_start=" in retry
        assert len(posts(sb)) == 1, "the retry sent nothing"
        if not after_processing:  # the explicit way through, once checked
            made = await c.call_tool("create_invoice", {**args, "allow_duplicate": True})
            assert made.structured_content["outcome"] == "created"
    assert len(created(sb, "Guarded seats")) == 1
    record_property("duplicates", {f"after ambiguous failure ({'landed' if after_processing else 'lost'})": 2})


@pytest.mark.slow
async def test_create_slower_than_the_timeout_then_retried(sb: Sandbox, record_property: Record) -> None:
    settings = settings_for(sb, AP_TIMEOUT_S="0.5")
    async with Client(build_server(settings)) as c:
        sb.faults.delay_next(1, 0.8, method="POST", path="/invoices")
        first = text_of(await c.call_tool("create_invoice", args_for(sb)))
        assert "may have been created" in first
        refused(await c.call_tool("create_invoice", args_for(sb)))  # while it is still upstream
        await settled(lambda: len(created(sb, "Guarded seats")) == 1)
    async with Client(build_server(settings)) as restarted:
        text = refused(await restarted.call_tool("create_invoice", args_for(sb)))
        assert created(sb, "Guarded seats")[0]["invoice_number"] in text
    assert len(posts(sb)) == 1
    record_property("duplicates", {"after timeout": [3, len(posts(sb))]})


def near_identical(sb: Sandbox) -> dict[str, dict[str, Any]]:
    base = args_for(sb)
    lines = base["line_items"]
    return {
        "reordered": {**base, "line_items": list(reversed(lines))},
        "whitespace and case": {
            **base,
            "line_items": [{**lines[0], "description": "  guarded   SEATS "}, lines[1]],
        },
        "10 vs 10.00": {**base, "line_items": [{**lines[0], "amount": 10.00}, {**lines[1], "amount": 99.50}]},
    }


@pytest.mark.parametrize("where", ["same server", "another server"])
@pytest.mark.slow
async def test_near_identical_bodies_are_recognised(sb: Sandbox, where: str, record_property: Record) -> None:
    async with Client(build_server(settings_for(sb))) as a:
        assert not (await a.call_tool("create_invoice", args_for(sb))).is_error
        async with Client(build_server(settings_for(sb))) as b:
            c = a if where == "same server" else b
            for name, variant in near_identical(sb).items():
                text = refused(await c.call_tool("create_invoice", variant))
                assert "identical invoice" in text, name
            # a real difference is not a duplicate
            other = args_for(sb)
            other["line_items"][0]["quantity"] = 4
            assert not (await c.call_tool("create_invoice", other)).is_error
    assert len(posts(sb)) == 2
    record_property("duplicates", {f"near-identical ({where})": [4, 1]})


@pytest.mark.parametrize("where", ["same server", "another server"])
async def test_due_date_omitted_equals_today(sb: Sandbox, where: str) -> None:
    today = sb.today().isoformat()
    async with Client(build_server(settings_for(sb))) as a:
        assert not (await a.call_tool("create_invoice", args_for(sb, due_date=today))).is_error
        async with Client(build_server(settings_for(sb))) as b:
            c = a if where == "same server" else b
            omitted = {k: v for k, v in args_for(sb).items() if k != "due_date"}
            refused(await c.call_tool("create_invoice", omitted))
    assert len(posts(sb)) == 1


async def test_allow_duplicate_is_the_explicit_way_through(sb: Sandbox) -> None:
    async with Client(build_server(settings_for(sb))) as c:
        first = await c.call_tool("create_invoice", args_for(sb))
        refused(await c.call_tool("create_invoice", args_for(sb)))
        second = await c.call_tool("create_invoice", args_for(sb, allow_duplicate=True))
        assert second.structured_content["outcome"] == "created"
        assert second.structured_content["invoice_number"] != first.structured_content["invoice_number"]
        refused(await c.call_tool("create_invoice", args_for(sb)))  # and the guard is still on
    assert len(posts(sb)) == 2 and len(created(sb, "Guarded seats")) == 2


async def test_a_rejected_create_frees_its_reservation(sb: Sandbox) -> None:
    """A definite failure (the API said no) created nothing: the corrected retry goes through."""
    async with Client(build_server(settings_for(sb))) as c:
        sb.faults.fail_next(1, 422, method="POST", path="/invoices")
        assert (await c.call_tool("create_invoice", args_for(sb))).is_error
        again = await c.call_tool("create_invoice", args_for(sb))
        assert again.structured_content["outcome"] == "created", text_of(again)
    assert [p.status for p in posts(sb)] == [422, 201]


async def test_a_preview_warns_of_a_duplicate_with_its_number_and_how_to_proceed(sb: Sandbox) -> None:
    async with Client(build_server(settings_for(sb))) as a:
        quiet = await a.call_tool("create_invoice", args_for(sb, dry_run=True))
        assert quiet.structured_content["outcome"] == "preview" and "duplicate_of" not in quiet.structured_content
        assert "possible duplicate" not in text_of(quiet)
        first = await a.call_tool("create_invoice", args_for(sb))
    number = first.structured_content["invoice_number"]
    # another server (no shared guard state) previews the same invoice: the API's recent invoices tell
    async with Client(build_server(settings_for(sb))) as b:
        preview = await b.call_tool("create_invoice", args_for(sb, dry_run=True))
    assert not preview.is_error and preview.structured_content["duplicate_of"] == number
    text = text_of(preview)
    assert f"possible duplicate: invoice {number}" in text and "allow_duplicate=true" in text
    assert f"get_invoice(invoice='{number}')" in text and "possible duplicate" in preview.structured_content["message"]
    assert len(posts(sb)) == 1  # previews send nothing
