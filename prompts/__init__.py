"""The prompt texts, shipped inside the package as ``invoice_mcp.prompt_texts`` (see pyproject.toml)."""
