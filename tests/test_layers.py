"""The package's layers (docs/architecture.md): every import points down, siblings marked independent
do not import each other, and no modules import each other in a cycle.

Every import counts, also one inside a function (a lazy import is still a dependency). The checker is
plain `ast` over the source, so a planted upward import fails this test whether or not it would run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "facecodec"

# Top to bottom, in import-linter's notation: within a layer, components separated by "|" are
# independent (neither imports the other), by ":" they may import each other.
LAYERS = [
    "facecodec.cli",  # the `facecodec` command line
    "facecodec.tools",  # demo, serving benchmark, speed benchmark
    "facecodec.rd",  # rate–distortion sweep: uses the codec and eval's metrics
    "facecodec.eval | facecodec.train",  # measure and train; use the codec, never the reverse
    "facecodec.serving | facecodec.client",  # Triton models and gRPC clients: both on the codec, not on each other
    "facecodec.codec",  # the one sender, the one receiver (sessions, refresh), stream files
    # packets; ONNX export, its runner and the runner's graph rewrites
    "facecodec.bitstream | facecodec.onnx_export : facecodec.runtime : facecodec.ort_rewrite",
    # networks, geometry, the tensor contract, weights; and small shared helpers
    "facecodec.models : facecodec.kinematics : facecodec.io_spec : facecodec.presets : facecodec.checkpoint"
    " : facecodec.weights : facecodec.plugin_spec : facecodec.perceptual : facecodec.landmarks : facecodec.media"
    " : facecodec.quality : facecodec.commands : facecodec.identity_split : facecodec.expression",
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """facecodec modules that `name` imports anywhere in its source (`from . import x` → the submodule x)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names} & known
            found.update(subs or {target})
    return {m for m in found if m == "facecodec" or m.startswith("facecodec.")} - {name}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def groups(layer: str) -> list[list[str]]:
    """A layer's independent groups ("|"), each a list of components that may import each other (":")."""
    return [[c.strip() for c in group.split(":")] for group in layer.split("|")]


def component(module: str) -> tuple[int, int, str] | None:
    """(layer index, group index, component) of a module: the longest listed prefix."""
    best = None
    for index, layer in enumerate(LAYERS):
        for group, comps in enumerate(groups(layer)):
            for comp in comps:
                if (module == comp or module.startswith(comp + ".")) and (best is None or len(comp) > len(best[2])):
                    best = (index, group, comp)
    return best


def violations(graph: dict[str, set[str]]) -> list[str]:
    """One line per import that points up a layer or across independent siblings, or leaves the layers."""
    problems = []
    for importer, targets in sorted(graph.items()):
        if importer == "facecodec":
            continue
        own = component(importer)
        if own is None:
            problems.append(f"{importer}: in no layer (add it to LAYERS and docs/architecture.md)")
            continue
        for target in sorted(targets):
            other = component(target)
            if other is None or target == "facecodec":
                continue  # reported as its own importer
            if other[0] < own[0]:
                problems.append(f"{importer} imports {target}: upward ({own[2]} is below {other[2]})")
            elif other[0] == own[0] and other[1] != own[1]:
                problems.append(f"{importer} imports {target}: {own[2]} and {other[2]} are independent")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_import_points_down_a_layer():
    problems = violations(import_graph())
    assert not problems, "imports against the layers (docs/architecture.md):\n  " + "\n  ".join(problems)


def test_no_import_cycles():
    groups = cycles(import_graph())
    assert not groups, f"modules that import each other: {groups}"


def test_the_checker_sees_a_planted_upward_import_and_a_cycle():
    graph = import_graph()
    graph["facecodec.codec.sender"] = graph["facecodec.codec.sender"] | {"facecodec.serving.server"}
    graph["facecodec.client.remote"] = graph["facecodec.client.remote"] | {"facecodec.serving.configs"}
    graph["facecodec.bitstream.motion"] = graph["facecodec.bitstream.motion"] | {"facecodec.bitstream.stream"}
    assert violations(graph) == [
        "facecodec.client.remote imports facecodec.serving.configs: facecodec.client and facecodec.serving are "
        "independent",
        "facecodec.codec.sender imports facecodec.serving.server: upward (facecodec.codec is below "
        "facecodec.serving)",
    ]
    assert any("facecodec.bitstream.motion" in group for group in cycles(graph))


def test_an_import_inside_a_function_counts(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from ..serving import server\n")
    graph = {"facecodec.codec.planted": imports_of("facecodec.codec.planted", planted, set(modules()))}
    assert graph["facecodec.codec.planted"] == {"facecodec.serving.server"}
    assert violations(graph) == ["facecodec.codec.planted imports facecodec.serving.server: upward "
                                 "(facecodec.codec is below facecodec.serving)"]
