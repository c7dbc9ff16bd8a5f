"""Import contracts between the layers, read from the source with ``ast`` (nothing is imported).

face -> server -> service -> api, never back; the API layer and the service know nothing of MCP;
only the faces import the sandbox, and the sandbox shares no code with the rest; no import cycles.
Every import counts for the layer rules: module level, inside functions, and under ``TYPE_CHECKING``.

Construction in one place: one module (the account factory) builds what an account owns (API
client, service, Redis stores, the shared HTTP transport); the service layer is handed them and
neither imports httpx or redis nor constructs an HTTP client, transport or Redis object.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "invoice_mcp"


@dataclass(frozen=True)
class Import:
    target: str  # absolute dotted module name
    line: int
    module_level: bool  # executed on import (not inside a function, not under TYPE_CHECKING)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str) -> Iterator[Import]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"), filename=str(MODULES[module]))

    def walk(node: ast.AST, module_level: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(alias.name, child.lineno, module_level)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(module, child)
                yield Import(target, child.lineno, module_level)
                for alias in child.names:  # `from pkg import submodule` imports the submodule too
                    if f"{target}.{alias.name}" in MODULES:
                        yield Import(f"{target}.{alias.name}", child.lineno, module_level)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), False)
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), module_level)
            else:
                yield from walk(child, module_level)

    yield from walk(tree, True)


IMPORTS: dict[str, list[Import]] = {m: list(imports_of(m)) for m in MODULES}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


# (layer, forbidden import prefixes); a layer is a module prefix inside the package.
RULES: list[tuple[str, tuple[str, ...]]] = [
    (
        "invoice_mcp.api",
        ("mcp", "mcp_types", "invoice_mcp.service", "invoice_mcp.server", "invoice_mcp.faces", "invoice_mcp.sandbox"),
    ),
    (
        "invoice_mcp.service",
        (
            "mcp",
            "mcp_types",
            "invoice_mcp.server",
            "invoice_mcp.faces",
            "invoice_mcp.sandbox",
            # It is handed its HTTP and Redis objects (by the account factory), it makes none.
            "httpx",
            "redis",
            "invoice_mcp.api.shared_state",
            "invoice_mcp.api.transport",
        ),
    ),
    ("invoice_mcp.server", ("invoice_mcp.faces", "invoice_mcp.sandbox")),
    # The state store is a leaf under the service: it knows no feature that uses it.
    (
        "invoice_mcp.state",
        (
            "mcp",
            "mcp_types",
            "invoice_mcp.api",
            "invoice_mcp.service",
            "invoice_mcp.server",
            "invoice_mcp.faces",
            "invoice_mcp.sandbox",
        ),
    ),
    # The OAuth face talks to the API only through the service layer's tenants, never to the sandbox.
    ("invoice_mcp.faces.oauth", ("invoice_mcp.sandbox", "invoice_mcp.api.client")),
    # The shared leaf helpers stay leaves.
    ("invoice_mcp.text", ("invoice_mcp.", "mcp", "mcp_types")),
    ("invoice_mcp.logs", ("invoice_mcp.", "mcp", "mcp_types")),
    ("invoice_mcp.clock", ("invoice_mcp.", "mcp", "mcp_types")),
]


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for module, imports in IMPORTS.items():
        if not _within(module, layer):
            continue
        for imp in imports:
            for prefix in forbidden:
                hit = imp.target.startswith(prefix) if prefix.endswith(".") else _within(imp.target, prefix)
                if hit:
                    found.append(f"{MODULES[module].relative_to(ROOT)}:{imp.line} imports {imp.target}")
    return found


def test_the_scan_sees_the_layers() -> None:
    for layer in ("invoice_mcp.api", "invoice_mcp.service", "invoice_mcp.server", "invoice_mcp.faces"):
        assert any(_within(m, layer) for m in MODULES), layer
    # The checks do see imports: the MCP layer imports mcp, the faces import the sandbox.
    assert _violations("invoice_mcp.server", ("mcp",))
    assert _violations("invoice_mcp.faces", ("invoice_mcp.sandbox",))


@pytest.mark.parametrize(("layer", "forbidden"), RULES, ids=[layer for layer, _ in RULES])
def test_layer_imports(layer: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(layer, forbidden) == []


def test_only_the_faces_import_the_sandbox() -> None:
    allowed = ("invoice_mcp.faces", "invoice_mcp.sandbox")
    found = [
        f"{MODULES[m].relative_to(ROOT)}:{i.line} imports {i.target}"
        for m, imports in IMPORTS.items()
        if not any(_within(m, a) for a in allowed)
        for i in imports
        if _within(i.target, "invoice_mcp.sandbox")
    ]
    assert found == []


def test_the_sandbox_shares_no_code() -> None:
    found = [
        f"{MODULES[m].relative_to(ROOT)}:{i.line} imports {i.target}"
        for m, imports in IMPORTS.items()
        if _within(m, "invoice_mcp.sandbox")
        for i in imports
        if _within(i.target, "invoice_mcp") and not _within(i.target, "invoice_mcp.sandbox")
    ]
    assert found == []


def _cycles(module_level_only: bool, imports_by_module: dict[str, list[Import]] | None = None) -> list[list[str]]:
    table = IMPORTS if imports_by_module is None else imports_by_module
    graph = {
        m: sorted({i.target for i in imports if i.target in table and (i.module_level or not module_level_only)})
        for m, imports in table.items()
    }
    # Tarjan's strongly connected components: any component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(components)


def _cycle_edges(module_level_only: bool) -> list[str]:
    """The imports inside each cycle, as ``file:line imports module`` (readable in a failure)."""
    edges = [
        (
            i.module_level,
            f"{MODULES[m].relative_to(ROOT)}:{i.line} imports {i.target}" + ("" if i.module_level else " (deferred)"),
        )
        for component in _cycles(module_level_only)
        for m in component
        for i in IMPORTS[m]
        if i.target in component and (i.module_level or not module_level_only)
    ]
    return [edge for _, edge in sorted(edges)]  # deferred imports (the ones that close a cycle) first


def test_no_import_cycles_at_module_level() -> None:
    """What runs on import: a cycle here is an import-order bug waiting to happen."""
    assert _cycle_edges(module_level_only=True) == []


def test_no_import_cycles_at_all() -> None:
    """Imports inside functions and under TYPE_CHECKING count too: a deferred import that closes a
    cycle hides a dependency that points the wrong way."""
    assert _cycle_edges(module_level_only=False) == []


def test_the_cycle_finder_finds_cycles() -> None:
    fake = {
        "a": [Import("b", 1, True)],
        "b": [Import("a", 2, False), Import("c", 3, True)],
        "c": [Import("c", 4, True)],
    }
    assert _cycles(module_level_only=False, imports_by_module=fake) == [["a", "b"], ["c"]]
    assert _cycles(module_level_only=True, imports_by_module=fake) == [["c"]]


# -- construction in one place -------------------------------------------------------------

ACCOUNT_FACTORY = "invoice_mcp.server.accounts"
ACCOUNT_PARTS = frozenset(
    {"APIClient", "InvoiceService", "RedisRateLimiter", "RedisTokenStore", "RedisReservations", "redis_pool"}
)
"""Constructors of what an account owns: only the account factory calls them."""
HTTP_AND_REDIS = frozenset(
    {"AsyncClient", "Client", "AsyncHTTPTransport", "HTTPTransport", "SharedTransport", "Redis", "RedisPool"}
    | {"ConnectionPool", "BlockingConnectionPool", "from_url", "from_pool"}
)
"""Constructors of HTTP clients and transports and of Redis clients and pools."""


def calls_in(source: str) -> list[tuple[str, int]]:
    """The names called in `source` (``httpx.AsyncClient(...)`` → ``AsyncClient``), with their lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name is not None:
                found.append((name, node.lineno))
    return found


CALLS: dict[str, list[tuple[str, int]]] = {m: calls_in(p.read_text(encoding="utf-8")) for m, p in MODULES.items()}


def _constructing(names: frozenset[str], layer: str = "invoice_mcp") -> dict[str, list[str]]:
    """Modules of `layer` (the sandbox aside) calling any of `names`, with what and where."""
    return {
        m: [f"{name}( at line {line}" for name, line in calls if name in names]
        for m, calls in CALLS.items()
        if _within(m, layer) and not _within(m, "invoice_mcp.sandbox") and any(n in names for n, _ in calls)
    }


def test_the_call_scan_sees_constructors() -> None:
    source = "import httpx\nasync def f():\n    c = httpx.AsyncClient(transport=AsyncHTTPTransport())\n"
    assert {name for name, _ in calls_in(source)} == {"AsyncClient", "AsyncHTTPTransport"}
    # The factory really is seen building every part, so the rules below cannot pass by seeing nothing.
    assert {name for name, _ in CALLS[ACCOUNT_FACTORY]} >= ACCOUNT_PARTS | {"SharedTransport", "AsyncHTTPTransport"}


def test_exactly_one_module_builds_accounts() -> None:
    assert list(_constructing(ACCOUNT_PARTS)) == [ACCOUNT_FACTORY]


def test_the_service_constructs_no_http_or_redis_objects() -> None:
    assert _constructing(HTTP_AND_REDIS | ACCOUNT_PARTS - {"InvoiceService"}, "invoice_mcp.service") == {}


def test_only_the_account_factory_makes_the_shared_transport_and_the_redis_pool() -> None:
    """One connection pool to the API and one to Redis per process: made by the factory alone
    (a Redis store given a URL instead of the pool opens its own: tests and benchmarks only)."""
    shared = frozenset({"SharedTransport", "AsyncHTTPTransport", "redis_pool"})
    assert list(_constructing(shared)) == [ACCOUNT_FACTORY]


LONGEST_FUNCTION = 60
"""Lines a function may take; the sandbox's data generator is a table of scenarios, read top to bottom."""
LONG_BY_DESIGN = {("invoice_mcp.sandbox.data", "generate_invoices")}


def long_functions(modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    found = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > LONGEST_FUNCTION and (name, node.name) not in LONG_BY_DESIGN:
                    found.append((name, node.name, lines))
    return found


def test_no_function_is_longer_than_a_screen() -> None:
    assert long_functions(MODULES) == []


def test_the_length_scan_sees_long_functions(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(LONGEST_FUNCTION))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n", encoding="utf-8")
    assert long_functions({"long": tmp_path / "long.py"}) == [("long", "long", LONGEST_FUNCTION + 1)]
