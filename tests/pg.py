"""A real Postgres on loopback for the tests (Debian package `postgresql`; scripts/test installs it).

initdb into a temporary folder, then `postgres` on a free port, with LD_PRELOAD removed (the
suite also runs under libfaketime) and, when the tests run as root, as the `postgres` user
(the server refuses to run as root). Each test gets its own fresh database.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .procs import free_port, stop

USER = "test"


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("initdb")
    assert exe, "postgres not found: apt-get install -y postgresql (scripts/test does it)"
    return Path(exe).parent


def _as_server_user() -> tuple[list[str], tuple[int, int] | None]:
    """The command prefix that drops root, and the uid/gid that must own the data folder."""
    if os.geteuid() != 0:
        return [], None
    pw = pwd.getpwnam("postgres")
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"], (pw.pw_uid, pw.pw_gid)


@contextmanager
def running_postgres() -> Iterator[str]:
    """A Postgres server for the duration; yields the URL of its maintenance database."""
    import psycopg

    bindir = _bindir()
    prefix, owner = _as_server_user()
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("PG")}
    env["LC_ALL"] = "C"
    root = Path(tempfile.mkdtemp(prefix="invoice-mcp-pg-"))
    if owner:
        os.chown(root, *owner)
    data = root / "data"
    port = free_port()
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=root,
        )
        settings = ["fsync=off", "full_page_writes=off", "synchronous_commit=off", "max_connections=60"]
        proc = subprocess.Popen(
            [*prefix, str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(root)]
            + [arg for s in settings for arg in ("-c", s)],
            env=env,
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"postgresql://{USER}@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while True:  # bounded poll until it accepts connections
            assert proc.poll() is None, f"postgres exited with {proc.returncode}"
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "postgres did not accept connections within 30 s"
                time.sleep(0.05)
        yield url
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on ``server_url``'s server; dropped afterwards."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
