"""server.json (the MCP registry entry) and the bundle manifest: valid, and in step with the server.

- server.json validates against the registry's published schema for its `$schema` version (a copy
  in tests/data/server-schema/, source and licence in its README);
- its environment variables are exactly the ones the server reads and `invoice-mcp --help` lists,
  with `isSecret` on the secrets, defaults and choices as the help states them;
- name, version and description agree with pyproject, `--version`, the README's mcp-name, the
  bundle manifest and the Dockerfile;
- the manifest declares the registry's tools and the server's prompts, and its user_config maps
  onto the environment the mcpb entry of server.json describes.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from invoice_mcp.server.prompts import PROMPT_NAMES, prompt_specs
from invoice_mcp.server.registry import TOOLS

ROOT = Path(__file__).resolve().parents[1]
SERVER = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
MANIFEST = json.loads((ROOT / "bundle" / "manifest.json").read_text(encoding="utf-8"))
SCHEMAS = ROOT / "tests" / "data" / "server-schema"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
ENV_NAME = re.compile(r"\b(?:AP|INVOICE_MCP)_[A-Z0-9_]+\b")
# Secrets: the API secret and the HTTP bearer token (SecretStr settings), and the Redis URL, which
# may carry a password (redis://:password@host).
SECRETS = {
    "AP_CLIENT_SECRET",
    "INVOICE_MCP_HTTP_TOKEN",
    "INVOICE_MCP_REDIS_URL",
    "INVOICE_MCP_STATE",
    "INVOICE_MCP_STATE_KEY",
}


def package(kind: str) -> dict[str, Any]:
    (found,) = [p for p in SERVER["packages"] if p["registryType"] == kind]
    return found


def cli(*args: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "invoice_mcp", *args], capture_output=True, text=True, timeout=60, check=True
    )
    return res.stdout


@pytest.fixture(scope="module")
def help_text() -> str:
    return cli("--help")


def help_lines(help_text: str) -> dict[str, str]:
    """The configuration epilog: variable name -> its line."""
    lines: dict[str, str] = {}
    for line in help_text.splitlines():
        if line.startswith("  ") and ENV_NAME.match(line.strip()):
            cells = re.split(r"\s{2,}", line.strip(), maxsplit=1)  # name column, 2+ spaces, text
            for name in ENV_NAME.findall(cells[0]) if len(cells) == 2 else ():
                lines[name] = cells[1]
    return lines


# --------------------------------------------------------------------------- the registry schema


def test_server_json_validates_against_the_registry_schema_of_its_version() -> None:
    version = re.fullmatch(
        r"https://static\.modelcontextprotocol\.io/schemas/([0-9-]+)/server\.schema\.json", SERVER["$schema"]
    )
    assert version, SERVER["$schema"]
    schema = json.loads((SCHEMAS / f"{version.group(1)}.json").read_text(encoding="utf-8"))
    assert schema["$id"] == SERVER["$schema"]
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(SERVER), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_schema_copy_rejects_what_the_registry_rejects() -> None:
    """The copy is the real schema, not a permissive stand-in: it refuses a long description, a
    'latest' version and an mcpb hash that is not 64 hex digits."""
    schema = json.loads((SCHEMAS / "2025-12-11.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    long = {**SERVER, "description": "x" * 101}
    latest = json.loads(json.dumps(SERVER))
    latest["packages"][0]["version"] = "latest"
    bad_sha = json.loads(json.dumps(SERVER))
    for p in bad_sha["packages"]:
        if p["registryType"] == "mcpb":
            p["fileSha256"] = "not-a-digest"
    for doc in (long, latest, bad_sha):
        assert not validator.is_valid(doc)


def test_packages_and_remotes_are_the_ones_the_project_ships() -> None:
    assert [p["registryType"] for p in SERVER["packages"]] == ["pypi", "mcpb", "oci"]
    pypi, mcpb, oci = package("pypi"), package("mcpb"), package("oci")
    assert pypi["identifier"] == "invoice-mcp" and pypi["runtimeHint"] == "uvx"
    assert pypi["transport"] == {"type": "stdio"} and mcpb["transport"] == {"type": "stdio"}
    assert re.fullmatch(r"[0-9a-f]{64}", mcpb["fileSha256"])  # written by scripts/build-bundle
    assert mcpb["identifier"].endswith(f"/releases/download/v{VERSION}/invoice-mcp-{VERSION}.mcpb")
    assert oci["identifier"].endswith(f"/invoice-mcp:{VERSION}")
    assert oci["transport"]["type"] == "streamable-http" and oci["transport"]["url"].endswith(":8000/mcp")
    oauth, remote = SERVER["remotes"]
    # A deployment with --auth oauth: the client finds the sign-in from the 401 (RFC 9728); no headers.
    assert oauth["type"] == "streamable-http" and oauth["url"].startswith("https://") and "headers" not in oauth
    assert remote["type"] == "streamable-http" and remote["url"].startswith("https://")
    headers = {h["name"]: h for h in remote["headers"]}
    # what the HTTP face in gateway mode requires of every request (README, Gateway mode)
    assert {n for n, h in headers.items() if h["isRequired"]} == {
        "Authorization",
        "X-Alternative-Payments-Client-Id",
        "X-Alternative-Payments-Client-Secret",
    }
    assert {n for n, h in headers.items() if h["isSecret"]} == {"Authorization", "X-Alternative-Payments-Client-Secret"}
    from invoice_mcp.server.gateway import CLIENT_ID_HEADER, CLIENT_SECRET_HEADER, ENVIRONMENT_HEADER

    assert {CLIENT_ID_HEADER.lower(), CLIENT_SECRET_HEADER.lower(), ENVIRONMENT_HEADER.lower()} == {
        n.lower() for n in headers if n.startswith("X-")
    }


# --------------------------------------------------------------------------- in step with the server


def test_environment_variables_are_exactly_what_the_server_reads_and_help_lists(help_text: str) -> None:
    read = set()
    for path in (ROOT / "invoice_mcp").rglob("*.py"):
        read |= set(re.findall(r"[\"']((?:AP|INVOICE_MCP)_[A-Z0-9_]+)[\"']", path.read_text(encoding="utf-8")))
    listed = set(ENV_NAME.findall(help_text))
    declared = [e["name"] for e in package("pypi")["environmentVariables"]]
    assert len(declared) == len(set(declared))
    assert read == listed == set(declared)
    oci = {e["name"] for e in package("oci")["environmentVariables"]}
    assert oci == set(declared)  # the image runs the same CLI


@pytest.mark.parametrize("kind", ["pypi", "mcpb", "oci"])
def test_is_secret_marks_exactly_the_secrets(kind: str) -> None:
    variables = package(kind)["environmentVariables"]
    assert {e["name"] for e in variables if e["isSecret"]} == SECRETS & {e["name"] for e in variables}


def test_defaults_and_choices_are_the_ones_help_states(help_text: str) -> None:
    lines = help_lines(help_text)
    for e in package("pypi")["environmentVariables"]:
        line = lines.get(e["name"], "")
        for choice in e.get("choices", []):
            assert re.search(rf"\b{re.escape(choice)}\b", line), (e["name"], choice, line)
        default = e.get("default")
        if default is None:
            continue
        if e.get("format") == "boolean":
            assert default == "0", e  # every flag is off unless set
            continue
        assert f"default {default})" in line or f"{default} (default)" in line, (e["name"], default, line)
    required = {e["name"] for e in package("pypi")["environmentVariables"] if e["isRequired"]}
    assert required == {"AP_CLIENT_ID", "AP_CLIENT_SECRET"}
    assert "(required" in lines["AP_CLIENT_ID"]


def test_name_version_and_description_agree_everywhere() -> None:
    assert cli("--version").strip() == f"invoice-mcp {VERSION}"
    assert SERVER["version"] == MANIFEST["version"] == VERSION
    assert {p["version"] for p in SERVER["packages"]} == {VERSION}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"<!-- mcp-name: {SERVER['name']} -->" in readme  # PyPI ownership check of the registry
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f'LABEL io.modelcontextprotocol.server.name="{SERVER["name"]}"' in dockerfile  # OCI ownership check
    assert SERVER["description"] == MANIFEST["description"]
    assert MANIFEST["name"] == package("pypi")["identifier"]


# --------------------------------------------------------------------------- the bundle manifest


def first_sentence(text: str) -> str:
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def test_manifest_declares_the_registry_tools() -> None:
    assert [(t["name"], t["description"]) for t in MANIFEST["tools"]] == [
        (t.name, first_sentence(t.description)) for t in TOOLS
    ], "bundle/manifest.json 'tools' must list server/registry.py's tools (first sentence of each description)"


def test_manifest_declares_the_server_prompts() -> None:
    from invoice_mcp.server import prompts as module

    descriptions = {fn.__name__: desc for fn, _, desc in module._PROMPTS}
    specs = {s.name: [a.name for a in s.arguments] for s in prompt_specs()}
    assert [p["name"] for p in MANIFEST["prompts"]] == list(PROMPT_NAMES)
    for p in MANIFEST["prompts"]:
        assert p["description"] == descriptions[p["name"]]
        assert p["arguments"] == specs[p["name"]] == list(inspect.signature(getattr(module, p["name"])).parameters)
        assert set(re.findall(r"\$\{arguments\.(\w+)\}", p["text"])) == set(p["arguments"]), p["name"]


def test_user_config_maps_onto_the_environment_server_json_describes() -> None:
    config = MANIFEST["user_config"]
    env = MANIFEST["server"]["mcp_config"]["env"]
    mapped = {}
    asked = set()
    for name, value in env.items():
        m = re.fullmatch(r"\$\{user_config\.(\w+)\}", value)
        assert m, f"{name}={value}: every bundle setting comes from the configuration dialog"
        mapped[name] = config[m.group(1)]
        asked.add(m.group(1))
    assert set(mapped) == {e["name"] for e in package("mcpb")["environmentVariables"]}
    assert set(config) == asked  # nothing asked that the server never sees
    for e in package("mcpb")["environmentVariables"]:
        spec = mapped[e["name"]]
        assert bool(spec.get("sensitive")) == e["isSecret"], e["name"]
        assert bool(spec.get("required")) == e["isRequired"], e["name"]
        if "default" in e:
            default = spec["default"]
            as_text = ("1" if default else "0") if isinstance(default, bool) else str(default)
            assert as_text == e["default"], e["name"]
        if e.get("format") == "boolean":
            assert spec["type"] == "boolean"
        for choice in e.get("choices", []):
            assert choice in spec["description"], (e["name"], choice)
    assert MANIFEST["server"]["type"] == "uv"
    assert (ROOT / "bundle" / MANIFEST["server"]["entry_point"]).is_file()
    assert set(MANIFEST["compatibility"]["platforms"]) == {"darwin", "win32", "linux"}
