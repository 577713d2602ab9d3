"""The package's floors (docs/architecture.md): no import circles, and no floor imports a
floor above it. Read from the source with ``ast``, function-level imports included, so a
lazy import cannot hide a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import napari_ptychotomo

ROOT = Path(napari_ptychotomo.__file__).parent
PACKAGE = "napari_ptychotomo"

# floor of each top-level part; a module may import its own floor and those below
FLOORS = {
    "optics": 0,
    "params_meta": 0,
    "_version": 0,
    "data": 0,
    "io": 0,
    "physics": 1,
    "engine": 1,
    "engine_guards": 1,
    "threads": 1,
    "_triton": 1,
    "ptycho": 2,
    "tomo": 2,
    "joint": 2,
    "analysis": 2,
    "simulate": 2,
    "pipeline": 3,
    "_napari": 4,
    "cli": 4,
    "__init__": 4,
}

# circles that are known and why they stay; anything else fails
ALLOWED_CIRCLES = {
    # a folder of scans is read file by file through the generic, extension-picked loader
    frozenset({"napari_ptychotomo.io", "napari_ptychotomo.io.tilt_series_files"}),
}


def _module_names() -> dict[str, Path]:
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports (at any depth of its code)."""
    names = _module_names()
    graph = {}
    for name, path in names.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in names else target)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = {d for d in deps if d in names and d != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS[parts[1] if len(parts) > 1 else "__init__"]


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [frozenset({"a", "b", "c"})]


def test_no_import_circles_beyond_the_known_ones():
    unexpected = [sorted(c) for c in circles(import_graph()) if c not in ALLOWED_CIRCLES]
    assert not unexpected, f"import circles: {unexpected}"


def test_every_top_level_part_has_a_floor():
    parts = {name.split(".")[1] for name in _module_names() if "." in name}
    assert parts <= set(FLOORS), f"parts without a floor in FLOORS: {sorted(parts - set(FLOORS))}"


def test_no_floor_imports_a_floor_above_it():
    upward = sorted(
        f"{module} → {dep}" for module, deps in import_graph().items() for dep in deps if _floor(dep) > _floor(module)
    )
    assert not upward, "imports from a higher floor:\n" + "\n".join(upward)
