"""The MCP Bundle, built and run the way Claude Desktop runs it.

`bash scripts/build-bundle` builds the .mcpb (installing the pinned mcpb tool on first use); the
test unpacks it with zipfile, substitutes the manifest's `${__dirname}` and `${user_config.*}` the
way a host does (booleans become "true"/"false"), and starts exactly the manifest's command, args
and env over stdio. The command is the real `uv` (the `uv` package of the dev extra).

Two honest differences from a user's machine, both outside the manifest's command line:
- install step: a user's first start makes uv download the dependencies from PyPI. Here the module
  fixture runs `uv sync` once into the project-local cache .cache/uv (a registry install step, like
  the npm install of the build tool; a warm cache downloads nothing), and the server itself is then
  started with UV_OFFLINE=1, so the run under test reaches nothing but the loopback sandbox;
- AP_BASE_URL points the server at the test sandbox (a user's bundle talks to the real API).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from invoice_mcp.sandbox import Sandbox
from invoice_mcp.server.registry import TOOLS

from .conftest import text_of

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
UV = Path(sys.executable).parent / "uv"
UV_CACHE = ROOT / ".cache" / "uv"
VARIABLE = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class Built:
    bundle: Path
    server_json: Path
    unpacked: Path
    manifest: dict[str, Any]


def uv_env(**extra: str) -> dict[str, str]:
    # The machine's TLS trust settings (a CA bundle set for an intercepting proxy) reach the install step.
    inherited = ("HOME", "LANG", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "https_proxy")
    keep = {k: os.environ[k] for k in inherited if k in os.environ}
    return {
        **keep,
        "PATH": f"{UV.parent}{os.pathsep}{os.defpath}",
        "UV_CACHE_DIR": str(UV_CACHE),
        "UV_PYTHON_DOWNLOADS": "never",  # use the machine's Python (>= 3.11), never fetch one
        "UV_NO_PROGRESS": "1",
        **extra,
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    assert UV.exists(), f"{UV} missing: the dev extra installs uv (pip install -e '.[dev]')"
    out = tmp_path_factory.mktemp("bundle")
    server_json = out / "server.json"
    shutil.copy(ROOT / "server.json", server_json)  # the build writes the sha here, not into the tree
    build = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-bundle"), "--out", str(out), "--server-json", str(server_json)],
        env={k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")},  # npm on the real clock
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    bundle = out / f"invoice-mcp-{VERSION}.mcpb"
    unpacked = out / "installed"
    with zipfile.ZipFile(bundle) as z:
        z.extractall(unpacked)
    manifest = json.loads((unpacked / "manifest.json").read_text(encoding="utf-8"))
    # The install step of a first start (see the module docstring); the run under test is offline.
    sync = subprocess.run(
        [str(UV), "sync", "--directory", str(unpacked), "--no-dev", "--quiet"],
        env=uv_env(),
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert sync.returncode == 0, sync.stderr
    return Built(bundle, server_json, unpacked, manifest)


def substitute(value: str, dirname: Path, user: dict[str, Any]) -> str:
    """A host's variable substitution: ${__dirname}, ${user_config.KEY} (booleans as true/false)."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "__dirname":
            return str(dirname)
        assert name.startswith("user_config."), f"the test does not know ${{{name}}}"
        v = user[name.removeprefix("user_config.")]
        return ("true" if v else "false") if isinstance(v, bool) else str(v)

    return VARIABLE.sub(one, value)


def launch(built: Built, sandbox: Sandbox, **answers: Any) -> StdioServerParameters:
    """What the host starts after the user filled in the configuration dialog."""
    config = built.manifest["user_config"]
    user = {k: spec["default"] for k, spec in config.items() if "default" in spec}
    user.update(answers)
    missing = [k for k, spec in config.items() if spec.get("required") and k not in user]
    assert not missing, f"required user_config not answered: {missing}"
    mcp = built.manifest["server"]["mcp_config"]
    env = {k: substitute(v, built.unpacked, user) for k, v in mcp["env"].items()}
    command = shutil.which(mcp["command"], path=uv_env()["PATH"])
    assert command, f"{mcp['command']} not found"
    return StdioServerParameters(
        command=command,
        args=[substitute(a, built.unpacked, user) for a in mcp["args"]],
        env=uv_env(UV_OFFLINE="1", AP_BASE_URL=sandbox.base_url, **env),
        cwd=str(built.unpacked.parent),
    )


def test_build_writes_the_bundle_sha256_into_server_json(built: Built) -> None:
    doc = json.loads(built.server_json.read_text(encoding="utf-8"))
    (mcpb,) = [p for p in doc["packages"] if p["registryType"] == "mcpb"]
    assert mcpb["fileSha256"] == hashlib.sha256(built.bundle.read_bytes()).hexdigest()
    assert mcpb["identifier"].endswith(f"/v{VERSION}/{built.bundle.name}")
    committed = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    for p in committed["packages"]:  # only the mcpb entry's hash and URL are the build's to write
        if p["registryType"] == "mcpb":
            p["fileSha256"], p["identifier"] = mcpb["fileSha256"], mcpb["identifier"]
    assert committed == doc


def test_bundle_holds_the_sources_and_no_build_litter(built: Built) -> None:
    with zipfile.ZipFile(built.bundle) as z:
        names = set(z.namelist())
        assert {i.date_time for i in z.infolist()} == {(2026, 1, 1, 0, 0, 0)}  # reproducible bytes
    assert {"manifest.json", "pyproject.toml", "server/main.py", "LICENSE", "README.md"} <= names
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / "invoice_mcp").rglob("*.py")}
    assert shipped <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith((".venv", "tests/"))]
    assert built.manifest == json.loads((ROOT / "bundle" / "manifest.json").read_text(encoding="utf-8"))


@pytest.mark.anyio
async def test_unpacked_bundle_serves_over_stdio_as_the_manifest_says(built: Built, sandbox: Sandbox) -> None:
    params = launch(built, sandbox, client_id=sandbox.config.client_id, client_secret=sandbox.config.client_secret)
    assert params.command.endswith("/uv") and params.args[:3] == ["run", "--directory", str(built.unpacked)]
    async with Client(params) as client:
        listed = [t.name for t in (await client.list_tools()).tools]
        r = await client.call_tool("list_invoices", {"limit": 3})
    assert listed == [t["name"] for t in built.manifest["tools"]] == [t.name for t in TOOLS]
    assert not r.is_error, text_of(r)
    expected = [i["invoice_number"] for i in sandbox.invoices(include_archived=False)[:3]]
    assert r.structured_content is not None
    assert [row[0] for row in r.structured_content["rows"]] == expected
    assert all(number in text_of(r) for number in expected)
    assert sandbox.token_requests == 1 and sandbox.requests("GET", "/invoices")  # it really asked the sandbox


@pytest.mark.anyio
async def test_read_only_answer_reaches_the_bundled_server(built: Built, sandbox: Sandbox) -> None:
    params = launch(
        built,
        sandbox,
        client_id=sandbox.config.client_id,
        client_secret=sandbox.config.client_secret,
        read_only=True,
    )
    assert params.env is not None and params.env["INVOICE_MCP_READ_ONLY"] == "true"
    async with Client(params) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
    assert listed == {t.name for t in TOOLS if t.read_only}
