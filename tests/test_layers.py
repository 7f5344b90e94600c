"""The hub's layers import one way (docs/protocol.md, "How it is built"): no module imports one
that imports it back, directly or round a loop, nor does any package of the hub; the actors never
import the WebSocket transport or its library; the pure frame modules do no I/O.

Imports are read from the source with `ast`, all of them: at module level, inside functions, and
under `if TYPE_CHECKING:`, since a cycle that only type checkers see is still two modules that
cannot be understood apart."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import hub

HUB = Path(hub.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(HUB.rglob("*.py")):
        parts = list(path.relative_to(HUB.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name `module` imports, absolute (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return _names_imported_by(path.read_text(), package)


def _names_imported_by(source: str, package: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                # `from hub import protocol` imports the module hub.protocol; `from hub.storage
                # import Storage`, the package's __init__.
                submodule = f"{base}.{alias.name}"
                names.add(submodule if submodule in MODULES else base)
    return names


def _hub_module_of(name: str) -> str | None:
    """The hub module that importing `name` runs (the longest known prefix), if any."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        targets = {_hub_module_of(name) for name in _imported_names(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def _package(module: str) -> str:
    """The layer a module belongs to: `hub.actors`, `hub.ws`, `hub.storage`, `hub.protocol`..."""
    return ".".join(module.split(".")[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("module", sorted(set(MODULES) - {"hub.__main__"}))  # runs the command
def test_every_hub_module_imports(module):
    importlib.import_module(module)


def test_no_two_hub_modules_import_each_other_even_round_a_loop():
    assert _cycles(_graph()) == []


def test_no_two_hub_packages_import_each_other_even_round_a_loop():
    packages: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        # The root package (hub/__init__.py) sits below everything; importing it is no layer.
        outward = {_package(t) for t in targets if t != "hub"} - {_package(module)}
        packages.setdefault(_package(module), set()).update(outward)

    assert _cycles(packages) == []


def test_the_actors_never_import_the_websocket_transport_or_its_library():
    offending = {
        module: sorted(
            name
            for name in _imported_names(module, path)
            if name.split(".")[:2] == ["hub", "ws"] or name.split(".")[0] == "trio_websocket"
        )
        for module, path in MODULES.items()
        if module.startswith("hub.actors")
    }

    assert {module: names for module, names in offending.items() if names} == {}


@pytest.mark.parametrize("module", ["hub.protocol", "hub.frames"])
def test_the_frame_modules_are_pure(module):
    io = {"trio", "trio_websocket", "wsproto", "socket", "os", "asyncio", "hub.storage"}
    imported = _imported_names(module, MODULES[module])

    assert sorted(n for n in imported if any(n == i or n.startswith(i + ".") for i in io)) == []


def test_the_checks_see_the_imports_and_cycles_they_are_for():
    """Imports under TYPE_CHECKING, inside functions and relative ones all count; a loop of
    three is a cycle, and what only leads into it is not part of it."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from hub.actors.supervisor import Supervisor\n"
        "def later():\n"
        "    from . import thread\n"
    )
    names = _names_imported_by(source, "hub.actors")
    assert {_hub_module_of(name) for name in names} >= {
        "hub.actors.supervisor",
        "hub.actors.thread",
    }
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
