"""Imports go one way: every module of prunebench imports only modules of its own layer or below, in
the layer order that docs/architecture.md writes down, and no two modules import each other (directly
or around a cycle). Imports inside functions count too: they are dependencies all the same."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO

PACKAGES = {"prunebench": REPO / "benchmark", "prunebench.methods": REPO / "methods"}


def layer_order() -> list[list[str]]:
    """The numbered list under "## Layers" in docs/architecture.md: "1. `seeds`, `spec`, ..."."""
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = [re.findall(r"`([\w.]+)`", line) for line in section.splitlines() if re.match(r"^\d+\. ", line)]
    assert layers, "docs/architecture.md has no numbered layer list under '## Layers'"
    return layers


def modules() -> dict[str, Path]:
    """prunebench module name (without the 'prunebench.' prefix; '' for the package) -> file."""
    out = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = [p for p in path.relative_to(root).with_suffix("").parts if p != "__init__"]
            out[".".join([package, *parts]).removeprefix("prunebench").lstrip(".")] = path
    return out


def imports(path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported prunebench module, line) for every import statement of a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from prunebench import api` imports the module prunebench.api
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}".removeprefix("prunebench.") in known
                     else node.module for a in node.names]
        for name in names:
            if name == "prunebench" or name.startswith("prunebench."):
                out.append((name.removeprefix("prunebench").lstrip("."), node.lineno))
    return out


def layer_of(module: str, layers: list[list[str]]) -> int | None:
    """The layer of the longest listed name that is the module or a package above it."""
    best, depth = None, -1
    for index, names in enumerate(layers):
        for name in names:
            label = "" if name == "prunebench" else name
            if (module == label or module.startswith(f"{label}.") or label == "" and module == "") and len(label) > depth:
                best, depth = index, len(label)
    return best


def test_every_module_has_a_layer():
    layers = layer_order()
    missing = sorted(m or "prunebench" for m in modules() if layer_of(m, layers) is None)
    assert not missing, f"modules in no layer of docs/architecture.md: {', '.join(missing)}"


def test_no_import_points_up_the_layer_order():
    layers, files = layer_order(), modules()
    backward = []
    for module, path in files.items():
        mine = layer_of(module, layers)
        for target, line in imports(path, set(files)):
            theirs = layer_of(target, layers)
            if theirs is not None and mine is not None and theirs > mine:
                backward.append(f"{path.relative_to(REPO)}:{line}: {module or 'prunebench'} (layer {mine + 1}) imports "
                                f"{target} (layer {theirs + 1})")
    assert not backward, "imports against the layer order:\n" + "\n".join(backward)


def test_no_import_cycle():
    files = modules()
    graph = {m: {t for t, _ in imports(p, set(files)) if t in files and t != m} for m, p in files.items()}
    # a package's __init__ re-exporting its own submodules is not a cycle of concepts
    graph = {m: {t for t in targets if not t.startswith(f"{m}.")} for m, targets in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_methods_import_only_the_author_facing_contract():
    """Methods read the contract (api), the specs, the pure sparsity schedules and the shared steps."""
    allowed = {"api", "spec", "sparsity", "methods.common"}
    files = modules()
    wrong = [f"{path.relative_to(REPO)}:{line}: imports prunebench.{target}"
             for module, path in files.items() if module.startswith("methods.")
             for target, line in imports(path, set(files)) if target not in allowed]
    assert not wrong, "methods import more than api, spec, sparsity and methods.common:\n" + "\n".join(wrong)


def test_a_backward_import_is_caught(tmp_path):
    """The check itself can fail: spec importing the runner is reported with its file and line."""
    fake = tmp_path / "spec.py"
    fake.write_text("import json\n\nfrom prunebench.runner import run_one\n")
    layers = layer_order()
    [(target, line)] = imports(fake, set(modules()))
    assert (target, line) == ("runner", 3) and layer_of(target, layers) > layer_of("spec", layers)
