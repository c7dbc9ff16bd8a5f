"""HTTP transport under a slowloris and a session flood, hardened vs the old setup.

Two servers are started as child processes on 127.0.0.1, the same app built by
`invoice_mcp.faces.http.build_http_app`:

* hardened: `uvicorn_config()` (request header/body deadlines, keep-alive 5 s) and
  `--max-sessions 1000`, once with the default `--session-idle-timeout 600` (the cap
  answers 503) and once with `--idle` seconds (default 10, so that reaping is observable
  in a short run);
* baseline: what serve_http did before: uvicorn defaults, the SDK's session defaults
  (10,000 sessions, 30 min idle).

Part A opens N sockets that send half a request line and stall, then counts how many the
server still holds (its open fds, /proc/<pid>/fd) over time. Part B opens sessions with
`initialize` and never closes them: accepted/503, server RSS before/after, KB per session,
and for the hardened server how long until idle sessions are reaped and new ones accepted.

Run: .venv/bin/python bench/http_hardening.py [--sockets 1000] [--sessions 1200] [--idle 10]
Everything is bounded (counts and time limits) and stays on loopback.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
PY = sys.executable
INIT = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
    b'"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}'
)
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def serve(mode: str, port: int, idle: float) -> None:
    """Child process: serve the app in `mode` until killed."""
    import uvicorn

    from invoice_mcp.api.settings import Settings
    from invoice_mcp.faces.http import HTTPOptions, _bind, build_http_app, build_http_server, uvicorn_config

    settings = Settings(client_id="bench", client_secret="bench-secret", base_url="http://127.0.0.1:9")  # type: ignore[arg-type]
    opts = HTTPOptions(port=port, session_idle_timeout_s=idle)
    sock = _bind("127.0.0.1", port)
    if mode == "hardened":
        config = uvicorn_config(build_http_app(settings, opts, log_level="ERROR", port=port), opts)
    else:
        from invoice_mcp.faces.http import MCP_PATH, transport_security

        server = build_http_server(settings, opts, log_level="ERROR", port=port)
        app = server.streamable_http_app(
            streamable_http_path=MCP_PATH, transport_security=transport_security(opts), host=opts.host
        )
        config = uvicorn.Config(app, log_config=None, log_level=None, timeout_graceful_shutdown=2, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(mode: str, idle: float) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [PY, __file__, "--serve", mode, str(port), str(idle)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(BENCH.parent)},
    )
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, f"{mode} server did not start"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, port
        except httpx.TransportError:
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise KeyError("VmRSS")


def stalled_sockets(mode: str, n: int, marks: list[float]) -> list[object]:
    proc, port = start(mode, 600.0)
    try:
        idle_fds = fds(proc.pid)
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and nothing more
            socks.append(s)
        t0 = time.monotonic()
        row: list[object] = [mode, n]
        for mark in marks:
            time.sleep(max(0.0, t0 + mark - time.monotonic()))
            row.append(max(0, fds(proc.pid) - idle_fds))
        # Client's view at the end: sockets the server closed.
        closed = 0
        for s in socks:
            ready, _, _ = select.select([s], [], [], 0)
            if ready:
                try:
                    if s.recv(1) == b"":
                        closed += 1
                except OSError:
                    closed += 1
            s.close()
        row.append(closed)
        return row
    finally:
        stop(proc)


def session_flood(mode: str, n: int, idle: float, watch_s: float) -> list[object]:
    proc, port = start(mode, idle)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        before = rss_kb(proc.pid)
        ok = refused = 0
        t = time.monotonic()
        with httpx.Client(timeout=30) as http:
            for _ in range(n):
                status = http.post(url, content=INIT, headers=MCP_HEADERS).status_code
                ok += status == 200
                refused += status == 503
            flood_s = time.monotonic() - t
            after = rss_kb(proc.pid)
            # How long until a new session is accepted again (only a cap can refuse one).
            reopened = "-"
            if refused:
                t = time.monotonic()
                while time.monotonic() - t < watch_s:
                    if http.post(url, content=INIT, headers=MCP_HEADERS).status_code == 200:
                        reopened = f"{time.monotonic() - t:.1f} s"
                        break
                    time.sleep(0.5)
                else:
                    reopened = f"not within {watch_s:.0f} s"
            else:
                time.sleep(min(watch_s, idle + 3))
        later = rss_kb(proc.pid)
        per = (after - before) / ok if ok else 0.0
        label = "baseline (10,000 / 30 min)" if mode == "baseline" else f"hardened (1,000 / {idle:g} s idle)"
        return [
            label,
            n,
            ok,
            refused,
            f"{flood_s:.1f}",
            before // 1024,
            after // 1024,
            f"{per:.0f}",
            reopened,
            later // 1024,
        ]
    finally:
        stop(proc)


def table(headers: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=1200)
    ap.add_argument("--idle", type=float, default=10.0, help="hardened server's --session-idle-timeout")
    ap.add_argument("--only", choices=("sockets", "sessions"), default=None)
    ap.add_argument("--serve", nargs=3, metavar=("MODE", "PORT", "IDLE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), float(args.serve[2]))
        return 0
    n_socks = min(args.sockets, 5000)
    n_sess = min(args.sessions, 5000)
    marks = [1.0, 5.0, 9.0, 12.0, 20.0]
    if args.only != "sessions":
        print(f"## Stalled sockets (half a request line, then nothing): {n_socks} opened", flush=True)
        rows = [stalled_sockets(mode, n_socks, marks) for mode in ("baseline", "hardened")]
        print(table(["server", "opened", *[f"held +{m:g} s" for m in marks], "closed by server (client view)"], rows))
    if args.only == "sockets":
        return 0
    print(f"\n## Sessions opened with initialize and never closed: {n_sess}", flush=True)
    rows = [
        session_flood("baseline", n_sess, 1800.0, 30.0),
        session_flood("hardened", n_sess, 600.0, 30.0),  # the default idle timeout: the cap does the work
        session_flood("hardened", n_sess, args.idle, 30.0),  # a short idle timeout: reaping does the work
    ]
    print(
        table(
            [
                "server",
                "initialize sent",
                "200",
                "503",
                "flood s",
                "RSS before MB",
                "RSS after MB",
                "KB/session",
                "new session accepted again after",
                "RSS later MB",
            ],
            rows,
        )
    )
    print("\n(server (max sessions / idle timeout); header deadline 10 s, body deadline 30 s, keep-alive 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
