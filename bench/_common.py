"""Shared helpers for the benchmarks: sandbox, settings, stdio launch, process stats, tables."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mcp.client.stdio import StdioServerParameters, stdio_client

from invoice_mcp.api.settings import Settings, load_settings
from invoice_mcp.sandbox import Sandbox, SandboxConfig

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TODAY = dt.date(2026, 11, 25)
PY = sys.executable


# -- sandbox & settings ---------------------------------------------------------------------------


@contextmanager
def sandbox(invoices: int = 300, rate_limit: float | None = None, customers: int = 12) -> Iterator[Sandbox]:
    """A seeded sandbox on loopback in a background thread of this process."""
    sb = Sandbox(SandboxConfig(invoices=invoices, customers=customers, rate_limit=rate_limit, today=TODAY))
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@dataclass(frozen=True)
class RemoteSandbox:
    """A sandbox served by another process (see _sandbox_proc.py); same credentials as the default config."""

    base_url: str
    config: SandboxConfig


@contextmanager
def sandbox_process(invoices: int = 300, rate_limit: float | None = None) -> Iterator[RemoteSandbox]:
    rate = "none" if rate_limit is None else f"{rate_limit:g}"
    proc = subprocess.Popen(
        [PY, str(BENCH / "_sandbox_proc.py"), str(invoices), rate],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"sandbox process failed to start: {url!r}")
        yield RemoteSandbox(url, SandboxConfig(invoices=invoices, rate_limit=rate_limit, today=TODAY))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_env(sb: Sandbox | RemoteSandbox, rate_limit: float = 1000.0) -> dict[str, str]:
    """The environment the server reads (same variables as tests/conftest.py)."""
    return {
        "AP_CLIENT_ID": sb.config.client_id,
        "AP_CLIENT_SECRET": sb.config.client_secret,
        "AP_BASE_URL": sb.base_url,
        "AP_RATE_LIMIT": f"{rate_limit:g}",
        "AP_TIMEOUT_S": "30",
    }


def settings_for(sb: Sandbox | RemoteSandbox, rate_limit: float = 1000.0) -> Settings:
    return load_settings(server_env(sb, rate_limit))


# -- stdio launch -----------------------------------------------------------------------------------


def launcher() -> tuple[list[str], str]:
    """How to start our server over stdio: the package CLI if present, else the bench launcher.

    BENCH_SERVER=module|script forces one.
    """
    choice = os.environ.get("BENCH_SERVER", "auto")
    has_main = importlib.util.find_spec("invoice_mcp.__main__") is not None
    if choice == "module" or (choice == "auto" and has_main):
        return ["-m", "invoice_mcp"], "python -m invoice_mcp"
    return [str(BENCH / "_stdio_server.py")], "python bench/_stdio_server.py"


def our_params(env: dict[str, str]) -> StdioServerParameters:
    args, _ = launcher()
    # Keep the benchmark's own interpreter state out of the child (no PYTHONSTARTUP etc.).
    return StdioServerParameters(command=PY, args=args, env=env, cwd=str(ROOT))


def minimal_params() -> StdioServerParameters:
    return StdioServerParameters(command=PY, args=[str(BENCH / "_minimal_server.py")], cwd=str(ROOT))


def stderr_sink(name: str) -> TextIO:
    """Server stderr goes to a temp file (the server logs every call); kept for post-mortems."""
    return open(Path(tempfile.gettempdir()) / f"invoice-mcp-bench-{name}.log", "w")


def stdio(params: StdioServerParameters, errlog: TextIO) -> AbstractAsyncContextManager[Any]:
    return stdio_client(params, errlog=errlog)


def child_pids() -> list[int]:
    """Direct children of this process (the stdio servers it spawned), oldest first."""
    pids: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(pids))


def proc_status_kb(pid: int, field: str) -> int:
    """A `kB` field of /proc/<pid>/status, e.g. VmHWM (peak RSS) or VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


# -- statistics & tables ----------------------------------------------------------------------------


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def p95(xs: Sequence[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.2f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip() or "?"
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"nproc {nproc} · {cpu} · Python {platform.python_version()} · {now}"
