"""One module per tool or small family of tools; the registry (server/registry.py) lists them."""
