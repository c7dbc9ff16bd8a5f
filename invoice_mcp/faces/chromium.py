"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`):
what the browser tests, the screenshot script and the view benchmark use to load the test host
page. Standard library only: no port is opened, no browser is downloaded (Debian's `chromium`),
and the helper binary runs without LD_PRELOAD (libfaketime in CI)."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

HEADLESS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""A quiet headless browser that reaches out to nobody (every page a person sees is tested in one)."""
FLAGS = (
    *HEADLESS,
    "--remote-debugging-pipe",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    "--disable-site-isolation-trials",  # the view frame stays in the page's process and frame tree
    "--disable-features=IsolateOrigins,site-per-process,IsolateSandboxedIframes",
)


class CDPError(RuntimeError):
    pass


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Chromium:
    """One browser process; `page()` opens a tab. Commands wait for their answer (with a timeout
    that only guards against a hung browser)."""

    def __init__(self, binary: str | None = None) -> None:
        exe = binary or find_chromium()
        if exe is None:
            raise CDPError("chromium not found (Debian: apt-get install chromium)")
        self._profile = tempfile.mkdtemp(prefix="invoice-mcp-chromium-")
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()

        def child_fds() -> None:  # pragma: no cover - runs in the child between fork and exec
            a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            preexec_fn=child_fds,
            pass_fds=(3, 4),  # the duplicates made by child_fds (closing other fds happens after it)
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._out = os.fdopen(to_chrome_w, "wb", buffering=0)
        self._in = os.fdopen(from_chrome_r, "rb", buffering=0)
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._next = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._listeners: list[Any] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self._in.read(65536)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._answers[msg["id"]] = msg
                    else:
                        for listener in list(self._listeners):
                            listener(msg)
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        with self._lock:
            self._next += 1
            mid = self._next
            msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            self._out.write(json.dumps(msg).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._answers or self._closed, timeout=60):
                raise CDPError(f"no answer to {method}")
            if mid not in self._answers:
                raise CDPError(f"browser closed during {method}")
            answer = self._answers.pop(mid)
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error'].get('message')}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def page(self, width: int = 900, height: int = 900) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return Page(self, session, width, height)

    def close(self) -> None:
        with suppress(CDPError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self._in.close()
        shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    """One tab. `frame_eval` runs script in the app view's own (sandboxed, cross-origin) frame."""

    def __init__(self, browser: Chromium, session: str, width: int, height: int) -> None:
        self.b = browser
        self.session = session
        self._contexts: dict[str, int] = {}
        self._loads = 0

        def listen(msg: dict[str, Any]) -> None:
            if msg.get("sessionId") != session:
                return
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Runtime.executionContextCreated":
                ctx = params["context"]
                aux = ctx.get("auxData") or {}
                if aux.get("isDefault"):
                    self._contexts[aux["frameId"]] = ctx["id"]
            elif method == "Runtime.executionContextsCleared":
                self._contexts.clear()
            elif method == "Page.loadEventFired":
                self._loads += 1

        with browser._cond:
            browser._listeners.append(listen)
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.resize(width, height)

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.b.send(method, params, self.session)

    def resize(self, width: int, height: int) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def goto(self, url: str) -> None:
        before = self._loads
        self.send("Page.navigate", {"url": url})
        with self.b._cond:
            if not self.b._cond.wait_for(lambda: self._loads > before, timeout=60):
                raise CDPError(f"{url} did not load")

    def eval(self, expression: str, context: int | None = None) -> Any:
        params: dict[str, Any] = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        if context is not None:
            params["contextId"] = context
        got = self.send("Runtime.evaluate", params)
        if "exceptionDetails" in got:
            details = got["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text")
            raise CDPError(f"script failed: {text}")
        return got.get("result", {}).get("value")

    def wait(self, condition: str, context: int | None = None, timeout_ms: int = 30_000) -> Any:
        """Resolve when `condition` (a JS expression) is truthy, polled inside the page."""
        script = (
            "new Promise((ok, fail) => { const t0 = performance.now(); (function poll() {"
            f" let v; try {{ v = ({condition}); }} catch (e) {{ v = undefined; }}"
            " if (v) return ok(v);"
            f" if (performance.now() - t0 > {timeout_ms})"
            f" return fail(new Error('timed out: ' + {json.dumps(condition)}));"
            " setTimeout(poll, 5); })(); })"
        )
        try:
            return self.eval(script, context)
        except CDPError as exc:  # say what the page showed instead
            shown = self.eval("document.body ? document.body.innerText.slice(0, 400) : ''", context)
            raise CDPError(f"{exc}; the page shows: {shown!r}") from None

    def view_frame(self) -> int:
        """The execution context of the first child frame (the app view), once it exists."""
        self.wait("document.querySelector('iframe') && window.appInitialized === true")
        tree = self.send("Page.getFrameTree")["frameTree"]
        child = tree["childFrames"][0]["frame"]["id"]
        with self.b._cond:
            if not self.b._cond.wait_for(lambda: child in self._contexts, timeout=30):
                raise CDPError("the view frame has no script context")
            return self._contexts[child]

    def frame_eval(self, expression: str) -> Any:
        return self.eval(expression, self.view_frame())

    def frame_wait(self, condition: str, timeout_ms: int = 30_000) -> Any:
        return self.wait(condition, self.view_frame(), timeout_ms)

    def wait_settled(self) -> None:
        """Until the host has sized the iframe to what the view reported (at most 500 px)."""
        height = self.frame_eval("Math.ceil(document.documentElement.scrollHeight)")
        self.wait(f"Math.round(document.querySelector('iframe').getBoundingClientRect().height) >= {min(500, height)}")

    def frame_center(self, selector: str) -> tuple[float, float]:
        """Page coordinates of the middle of an element inside the view frame, taken once the host
        has sized the frame: a resize after them would move the element under the pointer."""
        self.wait_settled()
        box = self.eval(
            "(() => { const r = document.querySelector('iframe').getBoundingClientRect(); return [r.x, r.y]; })()"
        )
        inner = self.frame_eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'nearest'});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        return box[0] + inner[0], box[1] + inner[1]

    def click(self, x: float, y: float, count: int = 1) -> None:
        for n in range(1, count + 1):
            base = {"x": x, "y": y, "button": "left", "clickCount": n}
            self.send("Input.dispatchMouseEvent", {"type": "mousePressed", **base})
            self.send("Input.dispatchMouseEvent", {"type": "mouseReleased", **base})

    def key(self, key: str) -> None:
        codes = {"Enter": 13, "Tab": 9, " ": 32}
        base = {"key": key, "code": "Space" if key == " " else key, "windowsVirtualKeyCode": codes.get(key, 0)}
        text = {"Enter": "\r", " ": " "}.get(key)
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", **base, **({"text": text} if text else {})})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **base})

    def screenshot(self, selector: str = "iframe") -> bytes:
        box = self.eval(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x, r.y, r.width, r.height]; })()"
        )
        clip = {"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1}
        data = self.send("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True})
        return base64.b64decode(data["data"])


@contextmanager
def chromium(binary: str | None = None) -> Iterator[Chromium]:
    browser = Chromium(binary)
    try:
        yield browser
    finally:
        browser.close()
