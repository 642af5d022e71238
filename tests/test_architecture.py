"""The import graph of Staybase's own packages has no cycles.

The graph is built from the source with `ast`, without importing anything. Module-level imports
(those that run when a module is first imported, `if TYPE_CHECKING:` blocks excluded) must form no
cycle. Imports inside functions are the usual way to hide a cycle, so a second test adds them to
the graph and must find none either.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(
    path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file() and path.name not in {"tests"}
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                modules[module_name(path)] = path
    return modules


def is_type_checking_block(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_nodes(tree: ast.Module, *, function_level: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Module-level imports, or with `function_level` also those inside functions."""

    def walk(statements: list[ast.stmt], in_function: bool) -> Iterator[ast.Import | ast.ImportFrom]:
        for node in statements:
            if is_type_checking_block(node):
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                if function_level or not in_function:
                    yield node
                continue
            nested_in_function = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field, None) or []
                blocks = [child for child in children if isinstance(child, ast.stmt)]
                for child in children:
                    if isinstance(child, ast.ExceptHandler | ast.match_case):
                        blocks.extend(child.body)
                yield from walk(blocks, nested_in_function)

    yield from walk(tree.body, in_function=False)


def imported_modules(name: str, path: Path, modules: dict[str, Path], *, function_level: bool) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    targets = set()
    for node in import_nodes(tree, function_level=function_level):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule when there is one, else a name of pkg.
            candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


def import_graph(*, function_level: bool) -> dict[str, set[str]]:
    modules = project_modules()
    return {
        name: imported_modules(name, path, modules, function_level=function_level) for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
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
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [shortest_cycle(graph, component) for component in components]


def shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """The shortest path from the component's first module back to itself, inside the component."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{component} is not strongly connected")


def describe(found: list[list[str]]) -> str:
    return "\n".join(" -> ".join(cycle) for cycle in found)


def test_cycle_finder_reports_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_sees_the_project() -> None:
    graph = import_graph(function_level=False)
    assert {"bookings.models", "properties.models"} <= graph["bookings.services.bookings"]
    # BookingsConfig.ready() imports bookings.cache: a function-level import.
    assert "bookings.cache" not in graph["bookings.apps"]
    assert "bookings.cache" in import_graph(function_level=True)["bookings.apps"]


def test_module_level_imports_have_no_cycle() -> None:
    found = cycles(import_graph(function_level=False))
    assert not found, "import cycles (module-level imports):\n" + describe(found)


def test_imports_including_function_level_have_no_cycle() -> None:
    found = cycles(import_graph(function_level=True))
    assert not found, "import cycles (module-level and function-level imports):\n" + describe(found)


# What starts a process in this suite: the modules, helpers and fixtures that do it.
STARTS_A_PROCESS = re.compile(
    r"\bsubprocess\.|\bos\.fork\(|\brun_python\(|\bstorage_for\(|\bSocketProcess\(|\bprivate_redis\b|\bgunicorn\("
)


def test_test_modules_that_start_processes_are_marked() -> None:
    unmarked = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tests").rglob("test_*.py"))
        if STARTS_A_PROCESS.search(text := path.read_text(encoding="utf-8")) and "pytest.mark.subprocess" not in text
    ]
    assert not unmarked, f"start a process but mark no test @pytest.mark.subprocess: {unmarked}"
