"""Import direction inside ``src/``: the library never reaches the flows, and dependencies form layers.

Every ``import`` is read from the source (module level and inside functions alike, plus
``importlib.import_module("...")`` with a literal name), so a lazy import cannot hide a dependency.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> Iterator[str]:
    """Every absolute module name ``path`` imports (``from a import b`` yields ``a`` and ``a.b``), and
    every string constant outside docstrings that names a ``flows`` module (a table of names handed to
    ``import_module`` later)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        literal = (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        )
        if literal and re.fullmatch(r"flows(\.\w+)*", node.value):
            yield node.value
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    return {
        mod: {name for name in imported_names(path) if name in files and name != mod}
        for mod, path in files.items()
    }


def package_of(module: str, graph: dict[str, set[str]]) -> str:
    """The package a module sits in (a package's ``__init__`` belongs to the package itself)."""
    is_package = any(other.startswith(module + ".") for other in graph)
    return module if is_package else module.rpartition(".")[0]


def test_no_library_module_imports_the_flows() -> None:
    offenders = sorted(
        f"{module_name(p)} imports {name}"
        for p in SRC.rglob("*.py")
        for name in imported_names(p)
        if name == "flows" or name.startswith("flows.")
    )
    assert offenders == []


def test_no_two_packages_import_each_other(graph: dict[str, set[str]]) -> None:
    """Packages that are not each other's ancestor depend one way only (e.g. labels -> evaluation)."""
    edges: set[tuple[str, str]] = set()
    for mod, deps in graph.items():
        for dep in deps:
            edges.add((package_of(mod, graph), package_of(dep, graph)))
    packages = sorted({p for edge in edges for p in edge})
    both = [
        (a, b)
        for a, b in itertools.combinations(packages, 2)
        if not (a.startswith(b + ".") or b.startswith(a + ".")) and (a, b) in edges and (b, a) in edges
    ]
    assert both == []


def test_modules_have_no_import_cycle(graph: dict[str, set[str]]) -> None:
    """Also within a package and between a package and its subpackages."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        for dep in sorted(graph.get(mod, ())):
            if dep.startswith(mod + "."):
                continue  # a package's __init__ re-exporting its own modules is not a cycle
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert cycles == []


def test_the_rules_see_a_violation(tmp_path: Path) -> None:
    """The scanner finds imports hidden inside functions and import_module calls."""
    f = tmp_path / "m.py"
    f.write_text(
        '"""Docstring naming flows.lineage."""\n'
        "TABLE = {'run': 'flows.retrain'}\n"
        "def g():\n    import flows.pipeline\n    importlib.import_module('flows.promote')\n"
    )
    assert set(imported_names(f)) >= {"flows.pipeline", "flows.promote", "flows.retrain"}
    assert "flows.lineage" not in set(imported_names(f)), "a docstring is no import"


def test_the_console_script_composes_flows_and_library(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    from flows import cli

    assert all(importlib.util.find_spec(m) for m in cli.FLOW_COMMANDS.values())
    assert cli.main(["data", "stats"]) == 2  # handed to the library, which prints its usage
    assert "usage: stvg data stats" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "stvg run [--stages ...]" in out and "stvg download|base_model|detector|prompt|label" in out
