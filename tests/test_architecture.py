"""The shape of the package: nothing in tinynet imports in a circle at import time, no file outgrows one concept
(500 lines), and no module hides a standard-library name (``tinynet/inspect.py`` once shadowed ``inspect``).

Which wing may import which (layers and kernels know nothing of the engine; kernels nothing of tinynet above them)
is checked in ``tests/test_engine_boundaries.py``; this file checks the whole package.

The cycle check reads the source with :mod:`ast`, so it sees what would run, not what happened to run first:

* only imports executed when a module is imported count: the module's top level, including ``if``/``try`` blocks
  and class bodies, but not function bodies (the deliberate lazy links, such as ``Sequential.save`` importing
  :mod:`tinynet.models.saving`, which builds Sequentials) and not ``if TYPE_CHECKING:`` blocks;
* ``from tinynet.a import b`` is an edge to the module ``tinynet.a.b`` when there is one, else to ``tinynet.a``;
* importing ``tinynet.a.b`` also runs ``tinynet/a/__init__.py``, but that is no edge here: a package's
  ``__init__`` importing its submodules and a submodule importing a sibling by its full name are the normal
  layout. A submodule importing a name *from its own package's* ``__init__`` (``from tinynet.a import Name``)
  is an edge to ``tinynet.a``, and with the ``__init__`` importing that submodule it is a real cycle: the name
  is not there yet while the ``__init__`` is half run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tinynet"
MAX_LINES = 500
#: Standard-library modules a tinynet module must not be named after (``import inspect`` inside the package, or a
#: tool run from the package folder, would find tinynet's module instead).
STANDARD_NAMES = {"inspect", "types", "typing", "io", "json", "csv", "math", "random", "copy", "abc", "array",
                  "logging", "warnings", "platform", "threading", "statistics", "numbers", "signal", "select"}


def _module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")


def _modules(root: Path) -> dict[str, Path]:
    return {_module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_time_imports(statements: list[ast.stmt]):
    """The import statements that run when the module is imported (see the module docstring)."""
    for statement in statements:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            yield statement
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            continue  # runs when called: a lazy link
        elif isinstance(statement, ast.If) and _is_type_checking(statement.test):
            yield from _import_time_imports(statement.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(statement, field, None) or []
                for child in children:
                    yield from _import_time_imports(child.body if isinstance(child, ast.excepthandler | ast.match_case)
                                                    else [child])


def _edges(module: str, path: Path, known: set[str]) -> set[str]:
    """The tinynet modules ``module`` imports at import time, resolved as the module docstring says."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    targets = set()
    for node in _import_time_imports(ast.parse(path.read_text(encoding="utf-8")).body):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{parent}.{base}" if base else parent
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            targets.add(submodule if submodule in known else base)
    return {target for target in targets if target in known and target != module}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = _modules(root)
    return {module: _edges(module, path, set(modules)) for module, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None when the graph has none (depth-first search)."""
    state: dict[str, str] = {}  # "visiting" while on the current path, "done" once every successor is cleared
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "visiting"
        path.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == "visiting":
                return path[path.index(other):] + [other]
            if other not in state and (cycle := visit(other)) is not None:
                return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_no_tinynet_module_imports_itself_in_a_circle():
    graph = import_graph()
    # The check must see the package's real links, or it passes for nothing.
    assert {"tinynet.models.passes", "tinynet.callbacks"} <= graph["tinynet.models.training"]
    assert "tinynet.models.sequential" in graph["tinynet.models.saving.rebuild"]
    assert not any(name.startswith("tinynet.models.saving") for name in graph["tinynet.models.sequential"]), \
        "Sequential imports the saver only when save() runs"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle_and_reads_only_import_time_imports(tmp_path):
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("from pkg import a\n")
    (root / "a.py").write_text("from pkg.sub import b\n\ndef later():\n    from pkg import c\n")
    (root / "c.py").write_text("import pkg.a\n")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
                                       "try:\n    from .. import c\nexcept ImportError:\n    pass\n")
    graph = import_graph(root)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.sub.b"}, "pkg.c": {"pkg.a"}, "pkg.sub": set(),
                     "pkg.sub.b": {"pkg.c"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (root / "c.py").write_text("")
    assert find_cycle(import_graph(root)) is None


def test_no_file_is_longer_than_one_concept():
    long_files = {str(path.relative_to(PACKAGE.parent)): length for path in sorted(PACKAGE.rglob("*.py"))
                  if (length := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long_files, f"files over {MAX_LINES} lines (split them by concept): {long_files}"


def test_no_module_is_named_after_the_standard_library():
    shadowing = sorted(module for module in _modules(PACKAGE) if module.rsplit(".", 1)[-1] in STANDARD_NAMES)
    assert not shadowing, f"these modules hide a standard-library module of the same name: {shadowing}"
