"""The faces: CLI, HTTP transport, demo and check wire the layers together; the only importers of the sandbox."""
