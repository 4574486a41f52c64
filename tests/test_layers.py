"""The tree's layering, read from the source: no import loops, a core that knows nothing of
its adapters, and the page and MCP adapters side by side (neither imports the other). Every
module also imports alone, in a fresh interpreter, so none leans on another having been
imported first."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "mcp_chat"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The package's modules `name` imports, anywhere in its body (a function's deferred
    import counts: it is a dependency all the same)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            # The longest known module the import names (a name imported from a module is
            # the module's dependency, not a module of its own).
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imports(name) for name in MODULES}


def test_no_module_imports_itself_round_a_loop() -> None:
    loops: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(GRAPH[name]):
            if dep.startswith(name + ".") or (name.startswith(dep + ".") and dep == PACKAGE):
                continue  # a package and its own submodules
            if state.get(dep) == 1:
                loops.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert loops == []


def adapters_of(name: str) -> set[str]:
    return {dep for dep in GRAPH[name] if dep.split(".")[1:2] in (["mcp"], ["web"], ["tui"])}


def test_the_core_knows_nothing_of_its_adapters() -> None:
    core = [n for n in GRAPH if n.split(".")[1:2] not in (["mcp"], ["web"], ["tui"])]
    # app.py and cli.py put the adapters together; nothing else outside them may import them.
    leaning = {n: adapters_of(n) for n in core if n not in {f"{PACKAGE}.app", f"{PACKAGE}.cli"}}
    assert {n: deps for n, deps in leaning.items() if deps} == {}


@pytest.mark.parametrize(("adapter", "other"), [("web", "mcp"), ("mcp", "web")])
def test_the_page_and_mcp_stand_side_by_side(adapter: str, other: str) -> None:
    prefix = f"{PACKAGE}.{adapter}"
    crossing = {
        name: sorted(d for d in deps if d.startswith(f"{PACKAGE}.{other}"))
        for name, deps in GRAPH.items()
        if name.startswith(prefix)
    }
    assert {n: d for n, d in crossing.items() if d} == {}


def test_both_adapters_show_records_through_the_neutral_views() -> None:
    assert f"{PACKAGE}.views" in GRAPH[f"{PACKAGE}.web.routes"]
    assert f"{PACKAGE}.views" in GRAPH[f"{PACKAGE}.mcp.results"]


def test_every_module_imports_alone() -> None:
    script = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('mcp_chat')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    names = sorted(n for n in MODULES if n != f"{PACKAGE}.__main__")
    done = subprocess.run(
        [sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
