"""Imports point one way: foundations -> mechanisms -> the Purifier -> faces -> adapters.

The test reads every module of the package, the adapters and the example plugin with
``ast`` (nothing is imported, so it is fast and needs no optional dependency) and collects
every import, the ones inside functions included: a lazy import is still a dependency. It
fails on an import that points up the layers, on an import circle, on an adapter that
imports another adapter, and on a module the table below does not place.

The layers, and why each module sits where it does, are described in docs/architecture.md.
A package ``__init__`` that runs because a submodule is imported is not counted: that is
how Python imports packages, and ``noisyclean/__init__.py`` is the public face at the top.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: where the modules of each distribution live: (folder holding the top package, package)
SOURCES = [
    (ROOT, "noisyclean"),
    (ROOT / "adapters" / "dinomaly", "noisyclean_dinomaly"),
    (ROOT / "adapters" / "anomalib", "noisyclean_anomalib"),
    (ROOT / "examples" / "plugin", "noisyclean_example_plugin"),
]

FOUNDATIONS, MECHANISMS, ORCHESTRATION, FACES, ADAPTERS = range(5)
LAYER_NAMES = ["foundations", "mechanisms", "orchestration", "faces", "adapters"]

#: module (or package: it covers its submodules) -> layer; the longest matching name wins
LAYERS = {
    # foundations: plain data and arithmetic every other part builds on
    "noisyclean._io": FOUNDATIONS,
    "noisyclean._moved": FOUNDATIONS,
    "noisyclean.protocol": FOUNDATIONS,
    "noisyclean.hookspecs": FOUNDATIONS,
    "noisyclean.samples": FOUNDATIONS,
    "noisyclean.partition": FOUNDATIONS,
    "noisyclean.consensus": FOUNDATIONS,
    "noisyclean.selection": FOUNDATIONS,
    "noisyclean.score_cache": FOUNDATIONS,
    "noisyclean.progress": FOUNDATIONS,
    "noisyclean.metrics": FOUNDATIONS,
    "noisyclean.tabular": FOUNDATIONS,
    "noisyclean.line_lists": FOUNDATIONS,
    "noisyclean.manifest_check": FOUNDATIONS,
    "noisyclean.outdir": FOUNDATIONS,
    # mechanisms: what trains, scores, loads and runs, each usable without the Purifier
    "noisyclean.data": MECHANISMS,
    "noisyclean.features": MECHANISMS,
    "noisyclean.backbones": MECHANISMS,
    "noisyclean.feature_cache": MECHANISMS,
    "noisyclean.detectors": MECHANISMS,
    "noisyclean.plugins": MECHANISMS,
    "noisyclean.executors": MECHANISMS,
    "noisyclean.whole_image": MECHANISMS,
    "noisyclean.mutual": MECHANISMS,
    "noisyclean.community": MECHANISMS,
    "noisyclean.tail": MECHANISMS,
    # orchestration: the Purifier and the helpers only it uses
    "noisyclean.submodel": ORCHESTRATION,
    "noisyclean.factories": ORCHESTRATION,
    "noisyclean.parameters": ORCHESTRATION,
    "noisyclean.preflight": ORCHESTRATION,
    "noisyclean.views": ORCHESTRATION,
    "noisyclean.persistence": ORCHESTRATION,
    "noisyclean.purifier": ORCHESTRATION,
    # faces: what a person calls or reads
    "noisyclean": FACES,  # the package's __init__: the public API
    "noisyclean.__main__": FACES,
    "noisyclean.cli": FACES,
    "noisyclean.cli_errors": FACES,
    "noisyclean.runs": FACES,
    "noisyclean.demo": FACES,
    "noisyclean.report": FACES,
    "noisyclean.benchmark": FACES,
    # adapters: separate distributions, found by the core only through entry points
    "noisyclean_dinomaly": ADAPTERS,
    "noisyclean_anomalib": ADAPTERS,
    "noisyclean_example_plugin": ADAPTERS,
}

def _moved_aliases() -> dict[str, str]:
    """Old module paths kept by :mod:`noisyclean._moved`, read without importing it: an
    import of an old path counts as an import of the module that replaced it."""
    tree = ast.parse((ROOT / "noisyclean" / "_moved.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "MOVED" for target in node.targets):
            return ast.literal_eval(node.value)
    return {}


MOVED = _moved_aliases()


def module_files() -> dict[str, Path]:
    """Every module of the package, the adapters and the example plugin, by dotted name."""
    out = {}
    for base, package in SOURCES:
        for path in sorted((base / package).rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = module_files()


def layer_of(module: str) -> int | None:
    """The layer of ``module`` from :data:`LAYERS` (longest prefix), ``None`` if unplaced."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in LAYERS:
            return LAYERS[name]
    return None


def _resolve(name: str) -> str | None:
    """The module of ours that importing ``name`` runs, or ``None`` for a third party's."""
    name = MOVED.get(name, name)
    return name if name in MODULES else None


def imports_of(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import of one of our modules in ``path``.

    ``from package import name`` is an import of ``package.name`` when that is a module,
    else of ``package`` itself; relative imports are resolved against ``module``.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name)
                if target:
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = _resolve(f"{base}.{alias.name}") or _resolve(base)
                if target:
                    yield target, node.lineno


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line}, our modules only, self-imports left out."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges: dict[str, int] = {}
        for target, line in imports_of(module, path):
            if target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or ``None`` (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def _distribution(module: str) -> str:
    return module.split(".")[0]


GRAPH = import_graph()


def test_the_walk_sees_the_modules_and_their_lazy_imports():
    # guards the test itself: a walk that found nothing would pass everything below
    assert {"noisyclean.purifier", "noisyclean.cli", "noisyclean_dinomaly.detector",
            "noisyclean_anomalib.detector"} <= set(MODULES)
    assert "noisyclean.samples" in GRAPH["noisyclean.purifier"]
    # cli imports the runs inside a command function, not at the top of the module
    assert "noisyclean.runs" in GRAPH["noisyclean.cli"]
    # relative and aliased imports resolve to real modules
    assert "noisyclean.executors.base" in GRAPH["noisyclean.executors.ray"]


def test_every_module_has_a_layer():
    unplaced = sorted(module for module in MODULES if layer_of(module) is None)
    assert not unplaced, (
        f"{unplaced} have no layer: add them to LAYERS in tests/test_layers.py and to the "
        "table in docs/architecture.md"
    )


def test_no_import_points_up_the_layers():
    upward = [
        f"{module} ({LAYER_NAMES[layer_of(module)]}) imports {target} "
        f"({LAYER_NAMES[layer_of(target)]}) at {MODULES[module].relative_to(ROOT)}:{line}"
        for module, edges in GRAPH.items()
        for target, line in edges.items()
        if layer_of(module) is not None and layer_of(target) is not None
        and layer_of(target) > layer_of(module)
    ]
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_the_core_never_imports_an_adapter_and_adapters_not_each_other():
    crossing = [
        f"{module} imports {target}"
        for module, edges in GRAPH.items()
        for target in edges
        if _distribution(target) != "noisyclean"
        and _distribution(target) != _distribution(module)
    ]
    assert not crossing, "\n".join(crossing)


def test_there_is_no_import_circle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_checks_catch_a_circle_and_an_upward_import():
    # the checks run on a made-up graph, so a broken check cannot pass silently
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1}}) is None
    assert layer_of("noisyclean.purifier") > layer_of("noisyclean.samples")
    assert layer_of("noisyclean.report.writer") == FACES  # a package covers its submodules
    assert layer_of("noisyclean_dinomaly.model") == ADAPTERS
    assert layer_of("somebody_else") is None


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_imports_the_new_module_with_a_warning(old, monkeypatch):
    new = MOVED[old]
    assert new in MODULES, f"{old} is an alias of {new}, which does not exist"
    if new == "noisyclean.executors.ray":
        pytest.importorskip("ray")
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=rf"{old} has moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__spec__.name == new  # the new module keeps its own spec


def test_old_names_in_the_purifier_module_still_import():
    from noisyclean import factories, persistence
    from noisyclean import purifier as old

    assert old.factory_key is factories.factory_key
    assert old.resolved_arguments is factories.resolved_arguments
    assert old._Probe is factories._Probe
    assert old.MANIFEST == persistence.MANIFEST == "manifest.json"


def test_purifier_report_reaches_the_report_through_the_registry(tmp_path, monkeypatch):
    import numpy as np

    from noisyclean import Purifier
    from noisyclean import purifier as purifier_mod

    rng = np.random.default_rng(0)
    data = np.vstack([rng.normal(size=(40, 4)), rng.normal(8.0, 1.0, size=(4, 4))])
    fitted = Purifier("knn", k=2, keep=0.9, progress=False).fit(data)
    # the registry the package filled writes the real report
    path = fitted.report(None, tmp_path / "report.html", progress=False)
    assert path.exists() and "<html" in path.read_text().lower()
    # and Purifier.report only looks the writer up when called
    seen = []
    monkeypatch.setattr(purifier_mod, "_report_writer",
                        lambda p, dataset, out, **options: seen.append((p, out, options)) or out)
    assert fitted.report(data, "elsewhere.html", max_gallery=3) == "elsewhere.html"
    assert seen == [(fitted, "elsewhere.html", {"max_gallery": 3})]
    monkeypatch.setattr(purifier_mod, "_report_writer", None)
    with pytest.raises(RuntimeError, match=r"noisyclean\.report\.write_report"):
        fitted.report(data, tmp_path / "r.html")
