"""The source tree's shape: no import loops among the modules of src/mcp_chat."""

from __future__ import annotations

import ast
from pathlib import Path

import mcp_chat

SOURCE = Path(mcp_chat.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_at_load() -> dict[str, set[str]]:
    """Each module, and the modules of the tree it imports when it is loaded (imports inside
    functions come later, and `if TYPE_CHECKING:` ones never)."""
    modules = {module_name(p): p for p in SOURCE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    if submodule in modules:
                        found.add(submodule)
                    elif node.module in modules:
                        found.add(node.module)
        graph[name] = found - {name}
    return graph


def test_no_module_imports_itself_through_others() -> None:
    graph = imports_at_load()
    assert "mcp_chat.stores.sqlite.engine" in graph and "mcp_chat.reading" in graph
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import loop: " + " -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for dependency in sorted(graph[name]):
            visit(dependency, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
