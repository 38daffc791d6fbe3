"""The code's shape holds: the import-linter contracts, no import circle, no hidden import.

The contracts (pyproject.toml, `[tool.importlinter]`) say which way the
layers import: ops above http above config above domain above storage, the
uplinks apart from the registry. The two checks below are what import-linter
does not do: a circle between modules of one layer, and an import inside a
function body, which is how a circle used to be hidden.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("registry", "uplinks", "storage")
MAX_LINES = 400

# Imports of our own modules that must stay inside a function, and why: none.
LATE_IMPORTS_ALLOWED: set[tuple[str, str]] = set()


def test_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm over the module graph: every group of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def visit(module: str) -> None:
        nonlocal counter
        index[module] = low[module] = counter
        counter += 1
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_import_circle() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert _strongly_connected(graph) == []


def _sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _late_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of each import of our own packages inside a function body."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                names = [module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [(node.lineno, name) for name in names if name.startswith(".") or name.split(".")[0] in PACKAGES]
    return found


def test_no_import_inside_a_function_body() -> None:
    late = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _sources()
        for line, module in _late_imports(path)
        if (str(path.relative_to(ROOT)), module) not in LATE_IMPORTS_ALLOWED
    ]
    assert late == []


def test_no_module_over_400_lines() -> None:
    files = _sources() + sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))
    long = [
        f"{path.relative_to(ROOT)}: {count} lines"
        for path in files
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert long == []
