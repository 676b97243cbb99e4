"""The import map of ``src/whybox``: no circles, and every import points down the layer order.

Every module's imports are read with :mod:`ast` (never by importing it): ``import a.b``,
``from a import b``, relative imports (``from ..x import y``, ``from . import z``), imports
inside functions, methods and ``try`` blocks, and ``importlib.import_module("whybox....")`` with a
literal name. Importing ``whybox.x.y`` from outside the package ``whybox.x`` also runs
``whybox/x/__init__.py``, so it counts as an import of that package too.

Exempt: imports under ``if TYPE_CHECKING:`` (they never run; annotations only), and names a
module looks up at run time from a variable (``Explanation.plot`` finds ``whybox.viz.accessor``
by name from the table ``explanation._ACCESSORS``, as pandas finds its plotting backend: the one
declared extension point by which a lower layer reaches a higher one).

LAYERS, bottom to top. A module may import from its own layer and any layer below; an import
of a higher layer fails, and so does any circle, within a layer too. A module that matches no
layer fails: a new package must be placed here when it is added.

- foundation: ``whybox`` (the lazy public facade: ``__version__`` and names resolved on first
  use; at run time it imports nothing of whybox) and ``errors``.
- validation: parameter and input checks, the shared target rule, no-pickle persistence helpers.
- data: ``zoo``, small data sets and toy models (and their weight cache); numpy / torch only.
- core: ``explanation`` (the one result type), ``models`` and ``_adapters`` (model adapters
  -> f(array)), ``parallel`` (executors, seeds, chunking).
- viz: plots read an ``Explanation`` (or an effects result) and nothing else, so every layer
  above may draw (``inspection``'s results plot through ``viz.effects``).
- games: the numpy game core (games, maskers, Shapley / Banzhaf / LIME estimators).
- explainer: the ``Explainer`` base classes users construct (model + masker -> Explanation).
- methods: the explainers and analyses themselves, side by side (model-agnostic, trees, linear,
  gradients, internals, inspection, recourse, glass-box models).
- api: ``explain(..., method="auto")`` and its registry; ``testing`` (conformance helpers).
- metrics: quality of explanations (may re-run methods).
- report: the HTML report (reads explanations, metrics, plots).
- cli: the command line (and ``_cli_inputs``, its file handling), the top.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "whybox"

LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["whybox", "whybox.errors"]),
    (
        "validation",
        [
            "whybox._validation",
            "whybox._targets",
            "whybox._persist",
            "whybox._selection",
            "whybox._shards",
        ],
    ),
    ("data", ["whybox.zoo"]),
    (
        "core",
        [
            "whybox.explanation",
            "whybox.models",
            "whybox._adapters",
            "whybox.parallel",
            "whybox._dask_explain",
        ],
    ),
    ("viz", ["whybox.viz"]),
    ("games", ["whybox.games", "whybox._dask_inspect"]),
    ("explainer", ["whybox.explainer"]),
    (
        "methods",
        [
            "whybox.agnostic",
            "whybox.trees",
            "whybox.linear",
            "whybox.gradients",
            "whybox.internals",
            "whybox.inspection",
            "whybox.recourse",
            "whybox.glassbox",
            "whybox.propagation",
            "whybox.text",
            "whybox.sae",
            "whybox.llm",
        ],
    ),
    ("api", ["whybox.api", "whybox.testing"]),
    ("metrics", ["whybox.metrics"]),
    ("report", ["whybox.report"]),
    ("serve", ["whybox.serve"]),
    (
        "cli",
        [
            "whybox.cli",
            "whybox._cli_inputs",
            "whybox._cli_console",
            "whybox._cli_internals",
            "whybox._cli_text",
            "whybox._cli_sae",
            "whybox._cli_serve",
            "whybox._cli_llm",
            "whybox._cli_cot",
        ],
    ),
]


# ------------------------------------------------------------------ the checker
@dataclass(frozen=True)
class Edge:
    """One import of ``target`` by ``source`` at ``line``."""

    source: str
    target: str
    line: int
    how: str = ""  # "", "in a function" or "TYPE_CHECKING"
    implicit: bool = False  # importing pkg.x.y from outside pkg.x runs pkg/x/__init__.py

    def __str__(self) -> str:
        notes = [self.how] if self.how else []
        if self.implicit:
            notes.append("implicit: runs the package __init__")
        return f"{self.source} -> {self.target} (line {', '.join([str(self.line), *notes])})"


def modules(src: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package ``__init__``) for every ``.py`` file of ``package``."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _raw_imports(tree: ast.AST) -> Iterable[tuple[ast.AST, str]]:
    """(node, how) for every import statement and literal ``importlib.import_module`` call."""

    def visit(node: ast.AST, how: str) -> Iterable[tuple[ast.AST, str]]:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, how
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node, how
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, "TYPE_CHECKING")
            for child in node.orelse:
                yield from visit(child, how)
            return
        inner = how
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not how:
            inner = "in a function"
        for child in ast.iter_child_nodes(node):
            yield from visit(child, inner)

    yield from visit(tree, "")


def _resolve(name: str, known: dict[str, tuple[Path, bool]]) -> str | None:
    """The longest known module that ``name`` is or lies in (``a.b.func`` -> ``a.b``)."""
    while name:
        if name in known:
            return name
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return None


def import_edges(src: Path, package: str = PACKAGE) -> list[Edge]:
    """Every import between modules of ``package`` under ``src``, read with ast."""
    known = modules(src, package)
    edges = []
    for mod, (path, is_pkg) in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, how in _raw_imports(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                # `from pkg import sub` imports the submodule; `from mod import name` the module
                names = [
                    f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem for a in node.names
                ]
            else:  # importlib.import_module("whybox.x")
                names = [node.args[0].value]
            for name in names:
                target = _resolve(name, known)
                if target is None or target == mod:
                    continue
                edges.append(Edge(mod, target, node.lineno, how))
                # importing a.b.c from outside package a.b also runs a/b/__init__.py
                parts = target.split(".")
                for i in range(2, len(parts)):
                    parent = ".".join(parts[:i])
                    if parent in known and not (mod == parent or mod.startswith(parent + ".")):
                        edges.append(Edge(mod, parent, node.lineno, how, implicit=True))
    return edges


def runtime(edges: Iterable[Edge], facade: str | None = None) -> list[Edge]:
    """The edges that run: TYPE_CHECKING ones are exempt, and so are the in-function (lazy,
    ``__getattr__``) imports of the ``facade`` package's ``__init__``."""
    return [
        e
        for e in edges
        if e.how != "TYPE_CHECKING" and not (e.source == facade and e.how == "in a function")
    ]


def _graph(edges: Iterable[Edge]) -> dict[str, dict[str, Edge]]:
    graph: dict[str, dict[str, Edge]] = {}
    for e in edges:
        graph.setdefault(e.source, {}).setdefault(e.target, e)
        graph.setdefault(e.target, {})
    return graph


def components(edges: Iterable[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one module (each holds a circle)."""
    graph = _graph(edges)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan, iterative over successors
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, succ = work[-1]
            for w in succ:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return components


def find_cycles(edges: Iterable[Edge]) -> list[list[Edge]]:
    """One concrete circle of imports (the shortest through its first module) per component."""
    edges = list(edges)
    graph = _graph(edges)
    cycles = []
    for comp in components(edges):  # shortest circle through the component's first module (BFS)
        members, start = set(comp), comp[0]
        prev: dict[str, Edge] = {}
        frontier = [start]
        found = None
        while frontier and found is None:
            nxt = []
            for u in frontier:
                for w, e in sorted(graph[u].items()):
                    if w not in members:
                        continue
                    if w == start:
                        found = e
                        break
                    if w not in prev:
                        prev[w] = e
                        nxt.append(w)
                if found:
                    break
            frontier = nxt
        path = [found]
        while path[0].source != start:
            path.insert(0, prev[path[0].source])
        cycles.append(path)
    return cycles


def layer_of(module: str, layers: Sequence[tuple[str, list[str]]]) -> int | None:
    """Index of the layer whose longest prefix matches ``module``; a root entry matches exactly."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(layers):
        for p in prefixes:
            exact_only = "." not in p  # the root package itself, not everything below it
            if module == p or (not exact_only and module.startswith(p + ".")):
                if len(p) > best_len:
                    best, best_len = i, len(p)
    return best


def unplaced(known: Iterable[str], layers: Sequence[tuple[str, list[str]]]) -> list[str]:
    return sorted(m for m in known if layer_of(m, layers) is None)


def upward_imports(edges: Iterable[Edge], layers: Sequence[tuple[str, list[str]]]) -> list[str]:
    """Every run-time import of a higher layer, as a readable line."""
    out = []
    for e in edges:
        a, b = layer_of(e.source, layers), layer_of(e.target, layers)
        if a is not None and b is not None and b > a:
            out.append(f"{e}: layer {layers[a][0]!r} imports the higher layer {layers[b][0]!r}")
    return sorted(set(out))


def _show_cycle(cycle: list[Edge]) -> str:
    def note(e: Edge) -> str:
        return f"{e.target} [{str(e).rsplit('(line ', 1)[1][:-1]}]"

    return " -> ".join([cycle[0].source] + [note(e) for e in cycle])


# ------------------------------------------------------------------ whybox itself
@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    """whybox's run-time imports (the facade's lazy ``__getattr__`` imports exempt)."""
    return runtime(import_edges(SRC), facade=PACKAGE)


def test_every_module_is_in_a_layer():
    missing = unplaced(modules(SRC, PACKAGE), LAYERS)
    assert not missing, (
        "modules in no layer of tests/test_architecture.py's LAYERS (place the new package "
        f"there, at the lowest layer its imports allow): {missing}"
    )


def test_no_import_circles(edges):
    cycles = find_cycles(edges)
    assert not cycles, "import circles (module -> imported [line]):\n" + "\n".join(
        _show_cycle(c) for c in cycles
    )


def test_imports_point_down_the_layers(edges):
    bad = upward_imports(edges, LAYERS)
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_the_facade_imports_nothing_at_run_time(edges):
    """``import whybox`` stays light: the root resolves its public names lazily, in
    ``__getattr__``; at module level it imports nothing of whybox."""
    eager = [str(e) for e in edges if e.source == PACKAGE]
    assert not eager, eager


# ------------------------------------------------------------------ the checker can fail
def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_reads_every_kind_of_import(tmp_path):
    src = _write(
        tmp_path,
        {
            "pkg/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .top import T\n",
            "pkg/low.py": "import os\n",
            "pkg/sub/__init__.py": "from . import c\n",
            "pkg/sub/c.py": "from .. import low\nfrom ..low import os\n",
            "pkg/sub/d.py": "def f():\n    import pkg.top as t\n    return t\n",
            "pkg/top.py": (
                "import importlib\nimport pkg.sub.c\nfrom pkg.sub import d\n"
                "importlib.import_module('pkg.low')\n"
            ),
        },
    )
    got = {(e.source, e.target, e.how, e.implicit) for e in import_edges(src, "pkg")}
    assert got == {
        ("pkg", "pkg.top", "TYPE_CHECKING", False),
        ("pkg.sub", "pkg.sub.c", "", False),
        ("pkg.sub.c", "pkg.low", "", False),
        ("pkg.sub.d", "pkg.top", "in a function", False),
        ("pkg.top", "pkg.sub.c", "", False),
        ("pkg.top", "pkg.sub", "", True),  # importing pkg.sub.c runs pkg/sub/__init__.py
        ("pkg.top", "pkg.sub.d", "", False),
        ("pkg.top", "pkg.low", "", False),
    }
    edges = import_edges(src, "pkg")
    # pkg.top -> pkg.sub.d -> (in a function) pkg.top is a circle; the TYPE_CHECKING one is not
    (cycle,) = find_cycles(runtime(edges))
    assert {e.source for e in cycle} == {"pkg.sub.d", "pkg.top"}
    assert not any(e.source == "pkg" for e in cycle)


def test_checker_finds_a_circle_through_a_package_init(tmp_path):
    """a -> y.b is fine alone, but y/__init__ -> y.c -> a closes a circle at import time."""
    src = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.y.b import B\n",
            "pkg/y/__init__.py": "from .c import C\n",
            "pkg/y/b.py": "B = 1\n",
            "pkg/y/c.py": "from ..a import B as C\n",
        },
    )
    (cycle,) = find_cycles(runtime(import_edges(src, "pkg")))
    assert {e.source for e in cycle} == {"pkg.a", "pkg.y", "pkg.y.c"}


def test_checker_flags_an_upward_import_and_an_unplaced_module(tmp_path):
    src = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/base.py": "def f():\n    from pkg.ui import show\n",
            "pkg/ui.py": "from pkg.base import f\nshow = f\n",
            "pkg/side.py": "from pkg import base\n",
            "pkg/stray.py": "",
        },
    )
    layers = [("foundation", ["pkg", "pkg.base", "pkg.side"]), ("ui", ["pkg.ui"])]
    edges = runtime(import_edges(src, "pkg"))
    assert upward_imports(edges, layers) == [
        "pkg.base -> pkg.ui (line 2, in a function): layer 'foundation' imports the higher "
        "layer 'ui'"
    ]
    assert unplaced(modules(src, "pkg"), layers) == ["pkg.stray"]
    assert layer_of("pkg.stray", layers) is None  # the root entry covers only the root itself


def test_a_circle_added_to_a_copy_of_whybox_is_caught(tmp_path):
    """The scratch-branch proof: one in-function import added to a copy of src/whybox."""
    shutil.copytree(SRC / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    before = runtime(import_edges(tmp_path), facade=PACKAGE)
    errors = tmp_path / PACKAGE / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef _scratch():\n    from .cli import app\n")
    after = runtime(import_edges(tmp_path), facade=PACKAGE)
    assert not any("whybox.errors" in c for c in components(before))
    assert any({"whybox.errors", "whybox.cli"} <= set(c) for c in components(after))
    assert any(
        line.startswith("whybox.errors -> whybox.cli") for line in upward_imports(after, LAYERS)
    )


def test_the_facade_exemption_covers_only_lazy_imports_of_the_root(tmp_path):
    src = _write(
        tmp_path,
        {
            "pkg/__init__.py": (
                "import importlib\nfrom . import eager\n"
                "def __getattr__(name):\n    return importlib.import_module('pkg.lazy')\n"
            ),
            "pkg/eager.py": "",
            "pkg/lazy.py": "from pkg import eager\n",
            "pkg/other.py": "def f():\n    from pkg import lazy\n",
        },
    )
    kept = {(e.source, e.target) for e in runtime(import_edges(src, "pkg"), facade="pkg")}
    assert kept == {("pkg", "pkg.eager"), ("pkg.lazy", "pkg.eager"), ("pkg.other", "pkg.lazy")}
