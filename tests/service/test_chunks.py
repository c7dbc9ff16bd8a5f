"""ChunkReader against a scripted API: backward steps and scans at the list's edges, pages
without cursors, pagination that does not advance, the scan budget, and single flight."""

from __future__ import annotations

from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest

from invoice_mcp.api.models import Invoice, Page
from invoice_mcp.service import chunks
from invoice_mcp.service.chunks import ChunkReader
from invoice_mcp.service.cursors import START, CursorCodec, Position
from invoice_mcp.service.errors import RunawayUpstream

pytestmark = pytest.mark.anyio

Key = tuple[str, str | None]


def _page(ids: list[str], **kw: Any) -> Page[Invoice]:
    return Page[Invoice](data=[Invoice(id=i) for i in ids], **kw)


class ScriptedAPI:
    """`list_invoices` answered from a script keyed by ("after", after) or ("before", before)."""

    def __init__(self, pages: dict[Key, Page[Invoice]]) -> None:
        self.pages = pages
        self.calls: list[Key] = []

    def answer(self, key: Key) -> Page[Invoice]:
        return self.pages[key]

    async def list_invoices(self, *, limit: int, **kw: Any) -> Page[Invoice]:
        key: Key = ("before", kw.pop("before")) if "before" in kw else ("after", kw.pop("after"))
        self.calls.append(key)
        return self.answer(key)


class LinearAPI(ScriptedAPI):
    """A well-behaved list r00..r{n-1} in pages of `size`; a page's cursors are its first and last ids."""

    def __init__(self, n: int, size: int) -> None:
        super().__init__({})
        self.ids = [f"r{i:02d}" for i in range(n)]
        self.size = size

    def answer(self, key: Key) -> Page[Invoice]:
        side, anchor = key
        if side == "after":
            lo = 0 if anchor is None else self.ids.index(anchor) + 1
            hi = min(len(self.ids), lo + self.size)
        else:
            assert anchor is not None
            hi = self.ids.index(anchor)
            lo = max(0, hi - self.size)
        rows = self.ids[lo:hi]
        return _page(
            rows,
            start_cursor=rows[0] if rows else None,
            end_cursor=rows[-1] if rows else None,
            has_next_page=hi < len(self.ids),
            has_previous_page=lo > 0,
        )


CODEC = CursorCodec(b"test-key")


def _reader(api: ScriptedAPI) -> ChunkReader[Invoice]:
    return ChunkReader(cast(Any, api).list_invoices, CODEC)


async def _read(api: ScriptedAPI, n: int, cursor: str | None = None, keep: Any = None) -> chunks.Chunk[Invoice]:
    """A chunk as the service reads one: the cursor decoded, then read from its position."""
    at, back = START, False
    if cursor:
        at, _, back = CODEC.decode(cursor)
    return await _reader(api).chunk({}, {}, n, at, back=back, keep=keep)


def _ids(rows: list[Invoice]) -> list[str | None]:
    return [r.id for r in rows]


def _only(*ids: str) -> Any:
    wanted = set(ids)
    return lambda inv: inv.id in wanted


# --- reading forward -------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [None, _only("b1", "b2", "b3")])
async def test_a_backward_page_without_an_end_cursor_ends_the_list(keep: Any) -> None:
    api = ScriptedAPI({("before", "x"): _page(["b1", "b2", "b3"], start_cursor="b1", end_cursor=None)})
    got = await _read(api, 5, CODEC.encode(Position("before", "x", 3), {}), keep)
    assert _ids(got.rows) == ["b1", "b2", "b3"]
    assert (got.has_more, got.next_cursor) == (False, None)
    assert got.prev_cursor is not None  # not the start: there is a way back
    assert api.calls == [("before", "x")]


@pytest.mark.parametrize("keep", [None, _only("a")])
async def test_forward_pagination_that_repeats_a_cursor_is_stopped(keep: Any) -> None:
    api = ScriptedAPI(
        {
            ("after", None): _page(["a"], end_cursor="c1", has_next_page=True),
            ("after", "c1"): _page(["b"], end_cursor="c1", has_next_page=True),
        }
    )
    with pytest.raises(RunawayUpstream, match="same page cursor twice"):
        await _read(api, 10, None, keep)
    assert api.calls == [("after", None), ("after", "c1")]


# --- stepping back (no server-side filter) ---------------------------------------------------


async def test_stepping_back_from_the_first_page_clamps_to_the_start() -> None:
    api = LinearAPI(12, 5)
    got = await _read(api, 4, CODEC.encode(Position("after", None, 2), {}, back=True))
    assert _ids(got.rows) == ["r00", "r01", "r02", "r03"]
    assert got.prev_cursor is None
    assert got.next_cursor is not None


async def test_stepping_back_over_an_empty_page_clamps_to_the_start() -> None:
    api = ScriptedAPI(
        {
            ("after", "gone"): _page([]),
            ("after", None): _page(["a", "b"]),
        }
    )
    got = await _read(api, 5, CODEC.encode(Position("after", "gone", 1), {}, back=True))
    assert _ids(got.rows) == ["a", "b"]
    assert got.prev_cursor is None
    assert api.calls == [("after", "gone"), ("after", None)]


async def test_stepping_back_from_a_gap_without_anchor_clamps_to_the_start() -> None:
    api = LinearAPI(3, 5)
    got = await _read(api, 2, CODEC.encode(Position("before", None, 1), {}, back=True))
    assert _ids(got.rows) == ["r00", "r01"]
    assert got.prev_cursor is None
    assert api.calls == [("after", None)]  # no backward request for an empty anchor


async def test_backward_pagination_that_repeats_a_cursor_is_stopped() -> None:
    api = ScriptedAPI({("before", "x"): _page(["a", "b"], start_cursor="x", has_previous_page=True)})
    with pytest.raises(RunawayUpstream, match="going backwards"):
        await _read(api, 5, CODEC.encode(Position("before", "x", 0), {}, back=True))
    assert api.calls == [("before", "x")]


async def test_stepping_back_across_pages_lands_on_the_right_rows() -> None:
    api = LinearAPI(12, 5)
    # the chunk that ends just after r09 (the gap after the second page), 7 rows long
    got = await _read(api, 7, CODEC.encode(Position("after", "r04", 5), {}, back=True))
    assert _ids(got.rows) == ["r03", "r04", "r05", "r06", "r07", "r08", "r09"]
    assert got.prev_cursor is not None and got.has_more


# --- scanning back (server-side filter) ------------------------------------------------------


async def test_scanning_back_from_the_start_stays_at_the_start() -> None:
    api = LinearAPI(6, 5)
    got = await _read(api, 2, CODEC.encode(Position("after", None, 0), {}, back=True), _only("r01", "r04"))
    assert _ids(got.rows) == ["r01", "r04"]
    assert got.prev_cursor is None


async def test_scanning_back_on_the_first_page_without_a_match_clamps_to_the_start() -> None:
    api = LinearAPI(6, 5)
    got = await _read(api, 1, CODEC.encode(Position("after", None, 2), {}, back=True), _only("r03"))
    assert _ids(got.rows) == ["r03"]
    assert got.prev_cursor is None


async def test_scanning_back_a_backward_page_without_earlier_pages_clamps_to_the_start() -> None:
    api = ScriptedAPI(
        {
            ("before", "x"): _page(["a", "b", "c"], start_cursor="a", has_previous_page=False),
            ("after", None): _page(["a", "b", "c"], end_cursor="c", has_next_page=False),
        }
    )
    got = await _read(api, 1, CODEC.encode(Position("before", "x", 2), {}, back=True), _only("c"))
    assert _ids(got.rows) == ["c"]
    assert got.prev_cursor is None


async def test_scanning_back_through_earlier_pages_to_the_first_clamps_to_the_start() -> None:
    api = LinearAPI(12, 5)
    got = await _read(api, 1, CODEC.encode(Position("after", "r09", 0), {}, back=True), _only("r10"))
    assert _ids(got.rows) == ["r10"]
    assert got.prev_cursor is None
    assert ("before", "r05") in api.calls  # it did read back to the first page


async def test_scanning_back_finds_a_match_pages_earlier() -> None:
    api = LinearAPI(12, 5)
    keep = _only("r01", "r02", "r11")
    got = await _read(api, 1, CODEC.encode(Position("after", "r09", 1), {}, back=True), keep)
    assert _ids(got.rows) == ["r02"]
    assert got.prev_cursor is not None  # r01 still comes before it
    back = await _read(api, 1, got.prev_cursor, keep)
    assert _ids(back.rows) == ["r01"] and back.prev_cursor is None


async def test_backward_scan_that_repeats_a_cursor_is_stopped() -> None:
    api = ScriptedAPI(
        {
            ("after", "k"): _page(["z"], start_cursor="s"),
            ("before", "s"): _page(["y"], start_cursor="s", has_previous_page=True),
        }
    )
    with pytest.raises(RunawayUpstream, match="going backwards"):
        await _read(api, 1, CODEC.encode(Position("after", "k", 1), {}, back=True), _only("nothing"))
    assert api.calls == [("after", "k"), ("before", "s")]


async def test_backward_scan_stops_at_the_page_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "MAX_SCAN_PAGES", 2)
    api = LinearAPI(30, 5)
    got = await _read(api, 1, CODEC.encode(Position("after", "r24", 5), {}, back=True), _only("r00"))
    backward = [c for c in api.calls if c[0] == "before"]
    # two pages scanned back, then it stopped; the forward scan resumes from there (r15)
    assert backward == [("before", "r25"), ("before", "r20"), ("before", "r15")]
    assert got.rows == [] and got.truncated and got.has_more
    assert got.prev_cursor is not None  # r00 is further back: the walk can go on


# --- single flight ---------------------------------------------------------------------------


async def test_a_burst_of_identical_page_reads_costs_one_request() -> None:
    release = anyio.Event()

    class Slow(ScriptedAPI):
        async def list_invoices(self, *, limit: int, **kw: Any) -> Page[Invoice]:
            self.calls.append(("after", kw.get("after")))
            await release.wait()
            return _page(["a"])

    api = Slow({})
    reader = _reader(api)
    got: list[Page[Invoice]] = []

    async def read() -> None:
        got.append(await reader.page({}, "after", None))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        tg.start_soon(read)
        while reader.pages.waiting(("{}", "after", None)) != 1:
            await anyio.lowlevel.checkpoint()
        release.set()
    assert len(got) == 2 and got[0] is got[1]
    assert api.calls == [("after", None)]
    assert reader.pages.loading == 0
