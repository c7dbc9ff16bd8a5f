"""Packaging: every package of the tree is shipped, the prompt texts travel with it, a LICENSE exists."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_package_in_the_tree_is_listed() -> None:
    """`packages` is explicit (the prompt texts need a package-dir mapping): a new subpackage must be added."""
    in_tree = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "invoice_mcp").rglob("__init__.py")}
    listed = set(SETUPTOOLS["packages"])
    assert in_tree <= listed, sorted(in_tree - listed)
    assert listed - in_tree == {"invoice_mcp.prompt_texts"}


def test_prompt_texts_are_package_data_of_invoice_mcp() -> None:
    assert SETUPTOOLS["package-dir"] == {"invoice_mcp.prompt_texts": "prompts"}
    assert SETUPTOOLS["package-data"]["invoice_mcp.prompt_texts"] == ["*.md"]
    assert sorted(p.name for p in (ROOT / "prompts").glob("*.md"))


def test_license_is_the_apache_text() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_views_and_the_test_host_page_are_package_data() -> None:
    data = SETUPTOOLS["package-data"]
    assert data["invoice_mcp.server"] == ["views/*.js", "views/*.css"]
    assert data["invoice_mcp.faces"] == ["apphost.html"]
    from invoice_mcp.server.apps import SHARED, VIEWS

    needed = {*SHARED, "ui.css", *(v.script for v in VIEWS)}
    assert needed <= {p.name for p in (ROOT / "invoice_mcp" / "server" / "views").iterdir()}
