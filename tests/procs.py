"""Helpers for tests that run `python -m invoice_mcp` as a real subprocess."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server.registry import TOOLS

ALL_TOOLS = frozenset(t.name for t in TOOLS)
"""What a served process must list: every tool of the registry."""

_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "XDG_DATA_HOME")
# Set by `coverage run` (patch = ["subprocess"]): a child that gets them is measured too.
_COVERAGE = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")


def coverage_env() -> dict[str, str]:
    """What a child process needs to be measured when the suite runs under coverage (else nothing)."""
    return {k: os.environ[k] for k in _COVERAGE if k in os.environ}


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_block() -> range:
    """This test process's own ports: below the kernel's ephemeral range (where every `bind(0)` of
    a sandbox or a client lands), one block per pytest-xdist worker, so a port picked here for a
    child process cannot be taken by another worker's pick or by anyone's ephemeral port before the
    child binds it."""
    low, top = 10000, min(_ephemeral_low(), 65536)
    workers = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), 1)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % workers
    size = (top - low) // workers
    return range(low + worker * size, low + (worker + 1) * size)


_next_port = [0]


def free_port() -> int:
    """A loopback port nobody holds now, from this process's block, never the same twice in a row."""
    block = _port_block()
    for _ in range(len(block)):
        port = block[(os.getpid() + _next_port[0]) % len(block)]
        _next_port[0] += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {block}")


def api_env(sb: Sandbox, **extra: str) -> dict[str, str]:
    """Every setting explicit (empty overrides a stray .env), pointed at the sandbox."""
    return {
        "AP_CLIENT_ID": sb.config.client_id,
        "AP_CLIENT_SECRET": sb.config.client_secret,
        "AP_BASE_URL": sb.base_url,
        "AP_ENVIRONMENT": "demo",
        "AP_RATE_LIMIT": "1000",
        "AP_TIMEOUT_S": "5",
        "INVOICE_MCP_READ_ONLY": "0",
        "INVOICE_MCP_CONFIRM": "auto",
        "INVOICE_MCP_REDIS_URL": "",
        "INVOICE_MCP_HTTP_TOKEN": "",
        "INVOICE_MCP_STATE": "sqlite://:memory:",
        **coverage_env(),
        **extra,
    }


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean process environment: nothing of the developer's AP_*/INVOICE_MCP_* leaks in."""
    return {**{k: os.environ[k] for k in _INHERITED if k in os.environ}, **coverage_env(), **(extra or {})}


def run_cli(
    args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoice_mcp", *args],
        env=base_env(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class HTTPServer:
    proc: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + "/mcp"

    def stderr(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def spawn_http(env: Mapping[str, str], cwd: Path, *extra_args: str) -> HTTPServer:
    port = free_port()
    # A file, not a pipe: a chatty server can never block on it. Closed by http_servers().
    log = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoice_mcp", "--transport", "http", "--port", str(port), *extra_args],
        env=base_env(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    return HTTPServer(proc, port, log)


def wait_ready(server: HTTPServer, timeout: float = 90) -> None:
    """Poll /health until it answers 200; fail fast if the process dies. The bound only ends a
    hung start: a loaded machine under coverage can take tens of seconds to import everything."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.stderr()}")
        try:
            if httpx.get(server.base + "/health", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    stop(server.proc)
    raise RuntimeError(f"server not ready after {timeout} s:\n{server.stderr()}")


@contextmanager
def http_servers(*specs: tuple[Mapping[str, str], tuple[str, ...]], cwd: Path) -> Iterator[list[HTTPServer]]:
    """Start several servers at once (they boot in parallel), wait for all, always stop all."""
    servers: list[HTTPServer] = []
    try:
        for env, args in specs:
            servers.append(spawn_http(env, cwd, *args))
        for s in servers:
            wait_ready(s)
        yield servers
    finally:
        for s in servers:
            stop(s.proc)
            s.log.close()


def native_env() -> dict[str, str]:
    """The environment for a helper binary (redis-server, postgres, chromium): the test run's,
    without a preloaded library such as libfaketime (CI shifts the suite's clock with it, and
    redis-server crashes under it). Python subprocesses keep the shifted clock."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}


@contextmanager
def running_redis() -> Iterator[str]:
    """A real redis-server on a free loopback port for the duration; yields its URL."""
    import redis  # the dev extra has it; only the Redis tests need it

    exe = shutil.which("redis-server")
    assert exe, "redis-server not found: apt-get install -y redis-server (scripts/test does it)"
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=native_env(),
        )
        try:
            probe = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)
            deadline = time.monotonic() + 60
            while True:  # bounded poll until it answers
                assert proc.poll() is None, f"redis-server exited with {proc.returncode}"
                try:
                    if probe.ping():
                        break
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "redis-server did not answer PING within 60 s"
                    time.sleep(0.02)
            probe.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(proc)
