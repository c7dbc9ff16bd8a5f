"""The MCP Apps views in real headless Chromium, inside the test host page (faces/apphost): the
host side of the protocol in the page, the view in a sandboxed iframe, the view's tool calls
answered by the real server over an MCP session against the sandbox over HTTP. Assertions read
the view's DOM and the sandbox's request log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from invoice_mcp.faces.apphost import AppHost
from invoice_mcp.faces.chromium import Chromium, Page, find_chromium
from invoice_mcp.sandbox import Sandbox

from ..conftest import settings_for

pytestmark = pytest.mark.slow

if find_chromium() is None:  # scripts/test installs Debian's chromium; a missing browser fails loudly
    raise RuntimeError("these tests need chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    b = Chromium()
    yield b
    b.close()


@pytest.fixture
def host(sandbox: Sandbox) -> Iterator[AppHost]:
    with AppHost(settings_for(sandbox)).running() as h:
        yield h


@pytest.fixture
def page(browser: Chromium) -> Page:
    return browser.page(900, 900)


def open_view(page: Page, host: AppHost, query: str) -> None:
    page.goto(host.url + "?" + query)
    page.frame_wait("document.querySelector('main h1, main .error')")
    assert page.frame_eval("document.querySelector('main .error') && document.querySelector('main').innerText") is None


def usd(value: Decimal) -> str:
    return f"{'-' if value < 0 else ''}${abs(value):,.2f}"


def texts(page: Page, selector: str) -> list[str]:
    return list(page.frame_eval(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent)"))


SETTLED = {"paid", "void", "voided", "canceled", "cancelled", "uncollectible", "written_off", "written-off"}


def owed_cell(sandbox: Sandbox, inv: dict[str, Any]) -> str:
    """What the Owed column must show, from the sandbox's own invoice → payments link."""
    if inv["status"] in ("draft", "archived"):
        return ""
    if inv["status"] in SETTLED:
        return usd(Decimal(0))
    total = Decimal(str(inv["total"]))
    if inv["status"] != "partially_paid":
        return usd(total)
    pays = sandbox.payments_by_invoice().get(inv["id"], [])
    paid = sum((Decimal(str(p["sub_total"])) for p in pays if p["status"] == "succeeded"), Decimal(0))
    return usd(total - min(paid, total))


def visible_numbers(sandbox: Sandbox) -> list[str]:
    return [i["invoice_number"] for i in sandbox.invoices(include_archived=False)]


def test_paging_reaches_the_last_invoice_and_rows_match_the_sandbox(
    page: Page, host: AppHost, sandbox: Sandbox
) -> None:
    host.specs["list"] = {"tool": "list_invoices", "arguments": {"limit": 100}}
    open_view(page, host, "spec=list")
    want = visible_numbers(sandbox)
    by_number = {i["invoice_number"]: i for i in sandbox.invoices()}
    seen: list[str] = []
    pages = partly = 0
    while True:
        pages += 1
        numbers = [
            r
            for r in page.frame_eval(
                "[...document.querySelectorAll('[data-action=open-invoice]')].map(r => r.dataset.ref)"
            )
        ]
        seen += numbers
        totals = page.frame_eval("[...document.querySelectorAll('tbody tr')].map(r => r.cells[3].textContent)")
        assert totals == [usd(Decimal(str(by_number[n]["total"]))) for n in numbers]
        owed = page.frame_eval("[...document.querySelectorAll('tbody tr')].map(r => r.cells[4].textContent)")
        assert owed == [owed_cell(sandbox, by_number[n]) for n in numbers]
        dates = page.frame_eval(
            "[...document.querySelectorAll('tbody tr')].map(r => [r.cells[5].textContent, r.cells[6].textContent])"
        )
        assert all(created and due for created, due in dates), dates[:3]  # the columns the rows carry
        partly += sum(by_number[n]["status"] == "partially_paid" for n in numbers)
        if page.frame_eval("document.querySelector('[data-action=next]').disabled"):
            break
        x, y = page.frame_center("[data-action=next]")
        page.click(x, y)
        page.frame_wait(f"document.querySelector('[data-role=summary]').textContent.includes('page {pages + 1}')")
    assert seen == want and pages == -(-len(want) // 100)
    assert partly > 0  # the Owed column was checked where it differs from the total
    # and back
    page.frame_eval("document.querySelector('[data-action=prev]').click()")
    page.frame_wait(f"document.querySelector('[data-role=summary]').textContent.includes('page {pages - 1}')")
    assert (
        page.frame_eval("document.querySelector('[data-action=open-invoice]').dataset.ref") == want[(pages - 2) * 100]
    )


def test_sorting_and_enter_on_a_row_opens_the_invoice(page: Page, host: AppHost, sandbox: Sandbox) -> None:
    open_view(page, host, "view=list")
    page.frame_eval("document.querySelector('[data-sort=total]').click()")
    totals = page.frame_eval("[...document.querySelectorAll('tbody tr')].map(r => r.cells[3].textContent)")
    values = [Decimal(t.replace("$", "").replace(",", "")) for t in totals]
    assert values == sorted(values) and len(values) == 10
    assert (
        page.frame_eval("document.querySelector('[data-sort=total]').closest('th').getAttribute('aria-sort')")
        == "ascending"
    )
    ref = page.frame_eval("document.querySelectorAll('[data-action=open-invoice]')[2].dataset.ref")
    page.frame_eval("document.querySelectorAll('[data-action=open-invoice]')[2].focus()")
    page.key("Enter")
    page.frame_wait("document.querySelector('article.invoice')")
    inv = next(i for i in sandbox.invoices() if i["invoice_number"] == ref)
    assert ref in page.frame_eval("document.querySelector('article h1').textContent")
    assert (
        page.frame_eval("document.querySelector('[data-field=total]').textContent")
        == usd(Decimal(str(inv["total"]))) + " USD"
    )
    page.frame_eval("document.querySelector('[data-action=back]').click()")
    page.frame_wait("document.activeElement && document.activeElement.dataset.ref === " + json.dumps(ref))


def test_the_summary_shows_the_sandbox_figures(page: Page, host: AppHost, sandbox: Sandbox) -> None:
    open_view(page, host, "view=summary")
    shown = page.frame_eval("document.querySelector('[data-field=total]').textContent")
    total = sum((Decimal(str(i["total"])) for i in sandbox.invoices(include_archived=False)), Decimal(0))
    assert shown == usd(total) + " USD"
    buckets = page.frame_eval("[...document.querySelectorAll('[data-bucket]')].map(e => e.dataset.bucket)")
    assert buckets == ["current", "1-30", "31-60", "61-90", "90+"]
    assert page.frame_eval("document.querySelectorAll('.bar').length") == 5
    assert "as of" in page.frame_eval("document.querySelector('[data-role=as-of]').textContent")
    assert page.frame_eval("document.querySelectorAll('[data-field=customer-balance]').length") >= 1


def test_invoice_card_payment_link_archive_and_restore(page: Page, host: AppHost, sandbox: Sandbox) -> None:
    open_view(page, host, "view=invoice")
    ref = page.frame_eval("document.querySelector('article h1').textContent").split(" ")[0]
    inv = next(i for i in sandbox.invoices() if i["invoice_number"] == ref)
    paid = [p for p in sandbox.payments() if p.get("invoice_id") == inv["id"] and p["status"] == "succeeded"]
    if paid:
        assert page.frame_eval("document.querySelectorAll('.timeline li').length") >= len(paid)
    page.frame_eval("document.querySelector('[data-action=payment-link]').click()")
    page.wait("window.openedLinks.length === 1")
    assert page.eval("window.openedLinks[0]").startswith("https://")
    assert page.eval("location.href").startswith(host.url)  # opened by the host, never navigated
    page.frame_eval("document.querySelector('[data-action=archive]').click()")
    page.frame_wait("document.querySelector('[data-action=restore]')")
    assert len(host.elicitations) == 1 and ref in host.elicitations[0]  # the server's confirmation was asked
    assert next(i for i in sandbox.invoices() if i["id"] == inv["id"])["status"] == "archived"
    page.frame_eval("document.querySelector('[data-action=restore]').click()")
    page.frame_wait("document.querySelector('[data-action=archive]')")
    assert next(i for i in sandbox.invoices() if i["id"] == inv["id"])["status"] == inv["status"]


def test_a_declined_archive_changes_nothing(page: Page, sandbox: Sandbox) -> None:
    with AppHost(settings_for(sandbox), confirm="decline").running() as host:
        open_view(page, host, "view=invoice")
        page.frame_eval("document.querySelector('[data-action=archive]').click()")
        page.frame_wait("document.querySelector('[data-role=message]').textContent.includes('did not confirm')")
        assert page.frame_eval("!!document.querySelector('[data-action=archive]')")
    assert not [r for r in sandbox.requests("POST") if "archive" in r.path]


def test_create_double_click_makes_one_post_then_a_second_preview_warns(
    page: Page, host: AppHost, sandbox: Sandbox
) -> None:
    open_view(page, host, "view=create")
    assert page.frame_eval("document.querySelector('[data-field=total]').textContent") == "$1,799.88 USD"
    assert page.frame_eval("!document.querySelector('[data-role=duplicate]')")
    sandbox.clear_log()
    x, y = page.frame_center("[data-action=create]")
    page.click(x, y, count=2)
    page.frame_wait("document.querySelector('[data-role=created]')")
    page.click(x, y)
    posts = [r for r in sandbox.requests("POST", "/invoices") if r.path == "/invoices"]
    assert len(posts) == 1
    assert page.eval("window.toolCalls") == ["create_invoice"]
    number = page.frame_eval("document.querySelector('[data-role=created]').textContent")
    open_view(page, host, "view=create")
    warning = page.frame_eval("document.querySelector('[data-role=duplicate]').textContent")
    assert number.split(" ")[1] in warning


CANARY = "window.__pwned"
PAYLOAD = (
    '<img src=x onerror="window.__pwned=1"></script><script>window.__pwned=2</script>'
    "\u202egnp.exe\u202c <b onmouseover=window.__pwned=3>x</b>"
)


def hostile_sandbox(sandbox: Sandbox) -> str:
    store = sandbox._app.store  # test-only: the API hands out hostile strings
    first = sandbox.invoices(include_archived=False)[0]
    with store.lock:
        inv = store.invoices_by_id[first["id"]]
        store.customers_by_id[inv.customer_id].name = PAYLOAD
        inv.memo = PAYLOAD
        inv.lines = tuple((PAYLOAD, a, q) for _, a, q in inv.lines)
    return str(first["invoice_number"])


def assert_inert(page: Page) -> None:
    assert page.frame_eval(f"typeof {CANARY}") == "undefined"
    assert page.frame_eval("document.querySelectorAll('main img, main script, main b').length") == 0
    assert page.eval(f"typeof {CANARY}") == "undefined"


def test_hostile_strings_from_the_api_render_as_text(page: Page, host: AppHost, sandbox: Sandbox) -> None:
    ref = hostile_sandbox(sandbox)
    for query in ("view=list", "view=summary", f"spec={ref}"):
        host.specs[ref] = {"tool": "get_invoice", "arguments": {"invoice": ref}}
        open_view(page, host, query)
        text = page.frame_eval("document.querySelector('main').textContent")
        assert "<img src=x" in text  # shown literally
        page.frame_eval("document.querySelectorAll('.data').forEach(e => e.dispatchEvent(new MouseEvent('mouseover')))")
        assert_inert(page)


def test_unfiltered_hostile_results_and_a_megabyte_name_stay_inert(page: Page, host: AppHost) -> None:
    huge = PAYLOAD + "N" * 1_000_000
    row = ["INV-1", huge, PAYLOAD, 10.5, 20261101, 20261201, 3]
    list_result: dict[str, Any] = {
        "content": [{"type": "text", "text": "x"}],
        "structuredContent": {
            "cols": ["number", "customer", "status", "total", "created", "due", "days_late"],
            "rows": [row],
            "sum": 10.5,
            "as_of": PAYLOAD,
            "hint": "end",
            "data": "x",
        },
    }
    card: dict[str, Any] = {
        "content": [{"type": "text", "text": "x"}],
        "structuredContent": {
            "id": "inv_1",
            "invoice_number": PAYLOAD,
            "customer": huge,
            "status": PAYLOAD,
            "total": 1,
            "memo": huge,
            "line_items": [{"description": huge, "amount": 1, "quantity": 1, "line_total": 1}],
            "payments": [{"method": PAYLOAD, "status": PAYLOAD, "amount": 1, "created_at": PAYLOAD}],
        },
    }
    host.specs["l"] = {"tool": "list_invoices", "arguments": {}, "result": list_result}
    host.specs["c"] = {"tool": "get_invoice", "arguments": {}, "result": card}
    for name in ("l", "c"):
        open_view(page, host, f"spec={name}")
        assert_inert(page)
        longest = page.frame_eval(
            "Math.max(...[...document.querySelectorAll('main *')].map(e => e.textContent.length))"
        )
        assert longest < 5_000  # clipped for display
        assert page.frame_eval("document.documentElement.scrollWidth") <= 900


CONTRAST = """(() => {
  function rgb(s) { const m = s.match(/[\\d.]+/g).map(Number); return m; }
  function lum(c) {
    const [r, g, b] = c.slice(0, 3).map(v => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  function bg(e) {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor); if (c.length < 4 || c[3] > 0) return c;
    }
    return rgb(getComputedStyle(document.documentElement).backgroundColor);
  }
  const worst = [];
  for (const e of document.querySelectorAll('main *')) {
    if (![...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const a = lum(rgb(getComputedStyle(e).color)), b = lum(bg(e));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) worst.push([e.tagName, e.className, e.textContent.slice(0, 30), ratio.toFixed(2)]);
  }
  return worst;
})()"""


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("view", ["list", "summary", "invoice", "create"])
def test_themes_contrast_and_a_narrow_screen(page: Page, host: AppHost, view: str, theme: str) -> None:
    page.resize(380, 900)
    open_view(page, host, f"view={view}&theme={theme}&width=360")
    assert page.frame_eval("document.documentElement.dataset.theme") == theme
    assert page.frame_eval(CONTRAST) == []  # WCAG AA for every text run
    assert page.frame_eval("document.documentElement.scrollWidth") <= 360  # tables scroll inside their box
    page.wait("document.querySelector('iframe').getBoundingClientRect().height > 60")
    assert page.eval("document.querySelector('iframe').getBoundingClientRect().height") <= 502
    # the host switches theme: the view follows
    page.eval("document.getElementById('theme').click()")
    other = "dark" if theme == "light" else "light"
    page.frame_wait(f"document.documentElement.dataset.theme === '{other}'")
    assert page.frame_eval(CONTRAST) == []


def test_the_screenshots_command_writes_both_themes_of_every_view(tmp_path: Any) -> None:
    from invoice_mcp.faces.cli import main

    assert main(["screenshots", str(tmp_path)]) == 0
    shots = sorted(p.name for p in tmp_path.iterdir())
    assert shots == sorted(f"{v}-{t}.png" for v in ("list", "summary", "invoice", "create") for t in ("light", "dark"))
    for p in tmp_path.iterdir():
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        height = int.from_bytes(data[20:24], "big")
        assert 100 < height <= 502  # inline height within 500 px (plus the host's border)


def test_the_table_works_when_rows_are_kept_out_of_structured_content(page: Page, sandbox: Sandbox) -> None:
    with AppHost(settings_for(sandbox, INVOICE_MCP_LIST_ROWS="text")).running() as host:
        open_view(page, host, "view=list")
        want = visible_numbers(sandbox)
        assert texts(page, "[data-action=open-invoice] td:first-child") == want[:10]
        page.frame_eval("document.querySelector('[data-action=next]').click()")
        page.frame_wait("document.querySelector('[data-role=summary]').textContent.includes('page 2')")
        assert texts(page, "[data-action=open-invoice] td:first-child") == want[10:20]


def test_the_apphost_command_serves_the_host_page_over_the_sandbox(tmp_path: Any) -> None:
    """The README's one command: `invoice-mcp apphost` prints the page's address and serves it."""
    import subprocess
    import sys

    import httpx

    from ..procs import base_env

    proc = subprocess.Popen(
        [sys.executable, "-m", "invoice_mcp", "apphost", "--port", "0"],
        cwd=tmp_path,
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Test host for the MCP Apps views: http://127.0.0.1:")
        url = first.split(": ", 1)[1].strip()
        with httpx.Client(timeout=30) as http:
            assert "invoice-mcp test host" in http.get(url).text
            opened = http.post(url + "api/open", json={"view": "summary"}).json()
        assert opened["uri"] == "ui://invoice-mcp/summary.html"
        assert opened["result"]["structuredContent"]["count"] > 0
    finally:
        proc.terminate()
        proc.wait(30)
