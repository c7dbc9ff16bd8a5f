"""The connect page in real headless Chromium: labels, keyboard order, contrast, the
wrong-key message, and nothing of the secret on the page afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from invoice_mcp.faces.oauth.store import MemoryGrantStore
from invoice_mcp.sandbox import Sandbox
from tests.oauth.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    authorize_params,
    http_client,
    keep_screenshot,
    register,
    serve_oauth,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SHOT = Path(__file__).resolve().parent / "connect_page_wrong_key.png"

CONTRAST_JS = """
(selectors) => {
  const lum = (rgb) => {
    const [r, g, b] = rgb.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number).map(v => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const bg = (el) => {
    for (; el; el = el.parentElement) {
      const c = getComputedStyle(el).backgroundColor;
      if (c && !c.startsWith('rgba(0, 0, 0, 0)') && c !== 'transparent') return c;
    }
    return 'rgb(255, 255, 255)';
  };
  return selectors.map(sel => {
    const el = document.querySelector(sel);
    const a = lum(getComputedStyle(el).color), b = lum(bg(el));
    return [sel, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
  });
}
"""


async def test_connect_page_in_chromium(sandbox: Sandbox, tmp_path: Path, update_snapshots: bool) -> None:
    from playwright.async_api import async_playwright

    store = MemoryGrantStore()
    with serve_oauth(sandbox, store) as server:
        async with http_client() as http:
            client_id = await register(http, server.base)
            resp = await http.get(server.base + "/authorize", params=authorize_params(server, client_id))
            connect_url = resp.headers["location"]
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=env)
            try:
                page = await browser.new_page()
                failed: list[str] = []
                page.on("requestfailed", lambda r: failed.append(r.url))
                page.on("console", lambda m: failed.append(m.text) if "Refused" in m.text else None)  # CSP reports
                await page.goto(connect_url)
                for label in ("API client ID", "API client secret", "Environment"):
                    assert await page.get_by_label(label, exact=True).count() == 1
                assert await page.get_by_role("button", name="Approve").count() == 1
                assert await page.get_by_role("button", name="Deny").count() == 1
                # keyboard: the fields in reading order, then approve, then deny
                order = []
                for _ in range(6):
                    await page.keyboard.press("Tab")
                    order.append(await page.evaluate("document.activeElement.id || document.activeElement.value"))
                assert order == ["ap_client_id", "ap_client_secret", "ap_environment", "allow_write", "approve", "deny"]
                ratios = await page.evaluate(
                    CONTRAST_JS, ["h1", "p.muted", "label", "button.approve", "button.deny", ".note", "li"]
                )
                for sel, ratio in ratios:
                    assert ratio >= 4.5, (sel, ratio)  # WCAG AA for normal text
                # a wrong key, typed and submitted from the keyboard
                await page.focus("#ap_client_id")
                await page.keyboard.type(sandbox.config.client_id)
                await page.keyboard.press("Tab")
                await page.keyboard.type("wrong-secret-typed-by-user")
                await page.keyboard.press("Enter")
                await page.wait_for_selector("#error")
                alert = page.get_by_role("alert")
                assert "did not accept this client ID and secret" in await alert.inner_text()
                assert await page.input_value("#ap_client_id") == sandbox.config.client_id
                assert await page.input_value("#ap_client_secret") == ""
                assert "wrong-secret-typed-by-user" not in await page.content()
                assert "wrong-secret-typed-by-user" not in page.url
                contrast = await page.evaluate(CONTRAST_JS, ["#error"])
                assert contrast[0][1] >= 4.5
                await page.screenshot(path=str(tmp_path / SHOT.name), full_page=True)
                assert failed == []  # nothing loaded from elsewhere, nothing blocked by the CSP
            finally:
                await browser.close()
        assert store.grants == {}
        keep_screenshot(tmp_path / SHOT.name, SHOT, update_snapshots)
