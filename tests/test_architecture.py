"""The layering DESIGN.md promises, checked on the source: providers use only pond_core.api,
pond_core imports no provider or orchestrator, and pond_core's modules import no cycle.

Imports are read with `ast` (top-level and inside functions, not under `if TYPE_CHECKING:`),
so a lazy import counts like any other.
"""

from __future__ import annotations

import ast
import inspect
import pathlib

import pond_core
from pond_core import settings as settings_module
from pond_core.session import init

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = {
    "pond_core": REPO / "pond_core",
    "pond_airflow": REPO / "providers" / "airflow" / "pond_airflow",
    "pond_prefect": REPO / "providers" / "prefect" / "pond_prefect",
}


def _module_name(package: str, path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGES[package]).with_suffix("")
    parts = [package, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """Absolute names of the modules `tree` imports. `from a import b` names `a.b` when that
    is a module, else `a` (a name that `a` defines or re-exports)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph(package: str) -> dict[str, set[str]]:
    paths = [p for p in sorted(PACKAGES[package].rglob("*.py")) if "migrations" not in p.parts]
    modules = {_module_name(package, p) for p in paths} | _engine_modules()
    return {
        _module_name(package, p): _imports(ast.parse(p.read_text()), _module_name(package, p), p.name == "__init__.py", modules)
        for p in paths
    }


def _engine_modules() -> set[str]:
    return {_module_name("pond_core", p) for p in PACKAGES["pond_core"].rglob("*.py")}


def test_providers_import_only_pond_cores_public_api():
    for package in ("pond_airflow", "pond_prefect"):
        for module, imported in _graph(package).items():
            engine = sorted(name for name in imported if name == "pond_core" or name.startswith("pond_core."))
            # `from pond_core import api` reads as the names pond_core and pond_core.api.
            assert set(engine) <= {"pond_core", "pond_core.api"}, f"{module} imports {engine}"


def test_pond_core_imports_no_provider_or_orchestrator():
    forbidden = ("pond_airflow", "pond_prefect", "airflow", "prefect")
    for module, imported in _graph("pond_core").items():
        bad = sorted(name for name in imported if name.split(".")[0] in forbidden)
        assert not bad, f"{module} imports {bad}"


def test_pond_core_has_no_import_cycle():
    graph = _graph("pond_core")
    modules = set(graph)
    # An edge to a module of the package; the package itself (`pond_core/__init__`) only
    # re-exports lazily, so importing a submodule never runs another module through it.
    edges = {m: {t for t in targets if t in modules and t != "pond_core"} - {m} for m, targets in graph.items()}
    cycles = _cycles(edges)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_init_takes_exactly_the_session_settings():
    declared = [s.name for s in settings_module.surface(settings_module.Surface.SESSION)]
    parameters = [
        name for name, p in inspect.signature(init).parameters.items()
        if name != "storage_options" and p.kind is not p.VAR_KEYWORD  # **unknown: a misspelt setting's error
    ]
    assert parameters == declared


def test_public_api_names_all_resolve():
    from pond_core import api

    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert pond_core.__version__


def test_api_types_what_it_exports():
    """api.py's `if TYPE_CHECKING:` block (what mypy checks the providers against) imports
    exactly the names `_EXPORTS` loads at run time, from the same modules."""
    from pond_core import api

    tree = ast.parse((PACKAGES["pond_core"] / "api.py").read_text())
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.unparse(stmt)
                typed.update({alias.asname or alias.name: stmt.module for alias in stmt.names})
    assert typed == api._EXPORTS


def test_plan_and_io_do_not_import_each_other_and_the_planner_imports_no_executor():
    """The plan layer builds specs and io executes them; the specs they share live in
    pond_core.specs, which imports neither (docs/internals.md, "Layers"). The planner imports
    no executor, session or DataFrame."""
    rules = {
        # the planner builds plans; it never reaches for what runs them
        "pond_core.plan": ("pond_core.io", "pond_core.execute", "pond_core.runner", "pond_core.session", "pond_core.dataframe"),
        "pond_core.io": ("pond_core.plan", "pond_core.sqlplan"),
        "pond_core.specs": ("pond_core.io", "pond_core.plan", "pond_core.sqlplan", "pond_core.execute"),
    }
    broken = []
    for module, imported in _graph("pond_core").items():
        for layer, never in rules.items():
            if module == layer or module.startswith(layer + "."):
                broken += [f"{module} imports {name}" for name in sorted(imported) if name.startswith(never)]
    assert not broken, broken


def _escapes_quotes(node: ast.AST) -> bool:
    """`x.replace("'", "''")` or `x.replace('"', '""')`: quoting SQL by hand."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "replace"):
        return False
    args = [a.value for a in node.args if isinstance(a, ast.Constant)]
    return len(args) == 2 and args[0] in ("'", '"') and args[1] == args[0] * 2


def test_sql_is_quoted_only_in_sql_quote():
    hand_quoted = []
    for package in PACKAGES:
        for path in sorted(PACKAGES[package].rglob("*.py")):
            if path == PACKAGES["pond_core"] / "sql_quote.py":
                continue
            tree = ast.parse(path.read_text())
            hand_quoted += [f"{path.relative_to(REPO)}:{n.lineno}" for n in ast.walk(tree) if _escapes_quotes(n)]
            hand_quoted += [
                f"{path.relative_to(REPO)}:{n.lineno} defines {n.name}"
                for n in ast.walk(tree)
                if isinstance(n, ast.FunctionDef) and n.name.lstrip("_").startswith("quote")
            ]
    assert not hand_quoted, "quote SQL with pond_core.sql_quote: " + ", ".join(hand_quoted)


def test_the_quoting_check_sees_hand_quoting():
    assert _escapes_quotes(ast.parse("""name.replace('"', '""')""").body[0].value)  # type: ignore[attr-defined]
    assert not _escapes_quotes(ast.parse("""name.replace("a", "b")""").body[0].value)  # type: ignore[attr-defined]


def test_the_sql_compiler_imports_no_session_dataframe_or_executor():
    """The SQL compiler is plan layer: it makes logical plan nodes from a statement and typed
    inputs; turning DataFrames into inputs and running plans is the front end's and executor's."""
    forbidden = ("pond_core.session", "pond_core.dataframe", "pond_core.execute", "pond_core.sqlplan", "pond_core.runner")
    compiler = {m: imported for m, imported in _graph("pond_core").items() if m.startswith("pond_core.plan.sqlcompile")}
    assert len(compiler) > 10, sorted(compiler)
    for module, imported in compiler.items():
        bad = sorted(name for name in imported if name.startswith(forbidden))
        assert not bad, f"{module} imports {bad}"
