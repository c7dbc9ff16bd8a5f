"""The container image: the Dockerfile's rules, and the image itself built and run with podman.

This machine (and CI, which runs on the same kind of machine) reaches Debian's and PyPI's package
servers but no container registry, so `bash scripts/build-image --local-base` builds the unchanged
Dockerfile on a base image made from Debian packages (python3 from bookworm) with the wheels built
on the host, with no network during the build. The default OCI runtime (crun) cannot set rlimits
here (no CAP_SYS_RESOURCE) and rejects the hybrid cgroup layout, so every podman command gets
`--runtime runc` and explicit --ulimit values (PODMAN_FLAGS).

The container runs the image's own ENTRYPOINT + CMD (nothing overridden), with the credentials and
token passed as `-e` at run time, reaches the test sandbox on the host's loopback through slirp4netns
(10.0.2.2), and is probed from the host through a published loopback port.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from invoice_mcp.sandbox import Sandbox

from .conftest import text_of
from .procs import ALL_TOOLS, free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
IMAGE = "localhost/invoice-mcp:test"
FLAGS = ["--runtime", "runc", "--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096"]
SECRET_WORDS = re.compile(r"SECRET|TOKEN|PASSWORD|CLIENT_ID|REDIS_URL", re.IGNORECASE)


def instruction(name: str) -> list[str]:
    """Every instruction `name` of the final stage, continuation lines joined."""
    final = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    joined = re.sub(r"\\\n\s*", " ", final)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def engine_env() -> dict[str, str]:
    """The shifted clock of the suite (libfaketime) must not reach podman or package downloads."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")}


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("podman")
    assert exe, "podman missing: bash scripts/build-image --local-base installs it"
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=timeout, env=engine_env(), stdin=subprocess.DEVNULL
    )


# --------------------------------------------------------------------------- the Dockerfile


def test_dockerfile_follows_the_server_rules() -> None:
    assert "python:3.12-slim" in DOCKERFILE.split("\n\nFROM", 1)[0]  # slim base by default
    (user,) = instruction("USER")
    assert re.fullmatch(r"[1-9][0-9]{3,}:[1-9][0-9]{3,}", user), user  # numeric, not root
    (cmd,) = instruction("CMD")
    (entry,) = instruction("ENTRYPOINT")
    argv = json.loads(entry) + json.loads(cmd)
    assert argv == ["invoice-mcp", "--transport", "http", "--host", "0.0.0.0", "--port", "8000"]
    assert instruction("EXPOSE") == ["8000"]
    (health,) = instruction("HEALTHCHECK")
    assert "http://127.0.0.1:8000/health" in health and "CMD [" in health
    # no secret in any layer: none set by ENV/ARG, none copied (the context is a whitelist without .env)
    for line in instruction("ENV") + instruction("ARG") + re.findall(r"^ARG (.*)$", DOCKERFILE, re.M):
        assert not SECRET_WORDS.search(line), line
    rules = [r for r in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines() if r and r[0] != "#"]
    assert rules[0] == "**"  # a whitelist: only what is named afterwards reaches the build
    assert "**/.env" in rules and not [r for r in rules if r.startswith(("!.env", "!tests", "!.venv", "!.cache"))]


# --------------------------------------------------------------------------- the image, built and run


@pytest.fixture(scope="module")
def image() -> str:
    build = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-image"), "--local-base", "--tag", IMAGE],
        env={**engine_env(), "PODMAN_FLAGS": " ".join(FLAGS)},
        capture_output=True,
        text=True,
        timeout=1800,
        stdin=subprocess.DEVNULL,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    assert build.stdout.strip().splitlines()[-1] == IMAGE
    return IMAGE


def in_container_url(sandbox: Sandbox) -> str:
    """The sandbox on the host's loopback, as the container reaches it through slirp4netns."""
    return f"http://10.0.2.2:{urlsplit(sandbox.base_url).port}"


@pytest.fixture
def container(image: str, sandbox: Sandbox) -> Iterator[tuple[str, int, str]]:
    token = secrets.token_urlsafe(36)
    port = free_port()
    name = f"invoice-mcp-test-{secrets.token_hex(4)}"
    run = podman(
        "run", *FLAGS, "-d", "--name", name,
        "--network", "slirp4netns:allow_host_loopback=true", "-p", f"127.0.0.1:{port}:8000",
        "-e", f"INVOICE_MCP_HTTP_TOKEN={token}",
        "-e", f"AP_CLIENT_ID={sandbox.config.client_id}",
        "-e", f"AP_CLIENT_SECRET={sandbox.config.client_secret}",
        "-e", "AP_ENVIRONMENT=demo",
        "-e", f"AP_BASE_URL={in_container_url(sandbox)}",
        image,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    try:
        deadline = time.monotonic() + 60
        while True:  # bounded poll of /health until the server answers
            state = podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            assert state == "true", podman("logs", name).stderr
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, podman("logs", name).stderr
            time.sleep(0.1)
        yield name, port, token
    finally:
        podman("rm", "-f", name)


@pytest.mark.slow
def test_image_is_non_root_and_holds_no_secrets(image: str) -> None:
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Labels"]["io.modelcontextprotocol.server.name"] == "io.github.invoice-mcp/invoice-mcp"
    check = inspected["Healthcheck"]["Test"]  # kept: built in docker format
    assert check[0] == "CMD" and "http://127.0.0.1:8000/health" in " ".join(check)
    assert not [e for e in config.get("Env", []) if SECRET_WORDS.search(e.split("=", 1)[0])]
    probe = podman(
        "run", *FLAGS, "--rm", "--network", "none", "--entrypoint", "python3", image, "-c",
        "import os, pathlib; print(os.getuid(), os.path.exists('/src'), list(pathlib.Path('/').glob('**/.env'))[:1])",
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["10001", "False", "[]"]  # the build stage's sources stay behind


@pytest.mark.slow
def test_image_refuses_to_serve_on_0000_without_a_token(image: str, sandbox: Sandbox) -> None:
    res = podman(
        "run", *FLAGS, "--rm", "--network", "none",
        "-e", "AP_CLIENT_ID=id", "-e", "AP_CLIENT_SECRET=secret", image,
    )  # fmt: skip
    assert res.returncode == 2
    assert "refusing to serve on 0.0.0.0" in res.stderr and "INVOICE_MCP_HTTP_TOKEN" in res.stderr


@pytest.mark.slow
@pytest.mark.anyio
async def test_container_serves_mcp_with_its_token_and_passes_its_healthcheck(
    container: tuple[str, int, str], sandbox: Sandbox
) -> None:
    name, port, token = container
    health = podman("healthcheck", "run", name)
    assert health.returncode == 0, health.stdout + health.stderr  # the image's own HEALTHCHECK
    url = f"http://127.0.0.1:{port}/mcp"
    async with httpx2.AsyncClient() as anonymous:
        assert (await anonymous.post(url, json={})).status_code == 401
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        assert {t.name for t in (await client.list_tools()).tools} == ALL_TOOLS
        r = await client.call_tool("list_invoices", {"limit": 3})
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None
    assert [row[0] for row in r.structured_content["rows"]] == [
        i["invoice_number"] for i in sandbox.invoices(include_archived=False)[:3]
    ]
    assert sandbox.requests("GET", "/invoices")  # through the container, to the sandbox on the host
    logs = podman("logs", name)
    assert token not in logs.stdout + logs.stderr
    assert sandbox.config.client_secret not in logs.stdout + logs.stderr
