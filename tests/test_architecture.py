"""The direction of dependencies holds, and breaking it fails `make lint` with the rule's name.

The import contracts live in pyproject.toml ([tool.importlinter]); docs/architecture.md
draws them. These tests run the real linter on a copy of the tree with one deliberate
violation each, so a contract that silently stopped checking would show here.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("controller", "adapters", "simulators")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

#: The pure core (the last layer of the contract), as folders and modules of controller/.
CORE = (
    "accounting",
    "catalog.py",
    "currency.py",
    "curves",
    "decision",
    "domain.py",
    "fast_replay.py",
    "records.py",
    "site_model.py",
    "status.py",
)
#: Standard-library modules the core may not use: no event loop, clock, logging or storage.
CORE_BANNED_STDLIB = {"asyncio", "time", "logging", "sqlite3", "socket", "threading"}


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the product packages and pyproject.toml, to break on purpose."""
    root = tmp_path_factory.mktemp("tree")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_contracts_hold_on_the_tree() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("controller/domain.py", "import structlog", "The pure core imports no logging"),
        ("controller/decision/policy.py", "import pydantic", "The pure core imports no logging"),
        (
            "controller/runtime/notify.py",
            "from adapters.feeds import store",
            "Layers: app -> config -> adapters | simulators -> runtime -> core",
        ),
        (
            "adapters/metrics/collector.py",
            "from simulators.miners import fleet",
            "Layers: app -> config -> adapters | simulators -> runtime -> core",
        ),
        (
            "controller/config/site.py",
            "from controller.app import drivers",
            "Layers: app -> config -> adapters | simulators -> runtime -> core",
        ),
    ],
)
def test_a_violation_fails_with_the_contracts_name(
    tree_copy: Path, module: str, line: str, contract: str
) -> None:
    path = tree_copy / module
    if not path.exists():  # a package now: break its __init__
        path = path.with_suffix("") / "__init__.py"
    original = path.read_text()
    try:
        path.write_text(original + f"\n{line}  # noqa\n")
        result = _lint(tree_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    assert f"{contract}" in result.stdout
    assert "BROKEN" in result.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in graph.modules:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_import_circle_in_the_product_packages() -> None:
    graph = grimp.build_graph(*PACKAGES)
    assert _cycles(graph) == []


def test_the_circle_finder_finds_a_circle(tree_copy: Path) -> None:
    """The check above can fail: a planted circle is found."""
    a, b = tree_copy / "controller" / "cyc_a.py", tree_copy / "controller" / "cyc_b.py"
    a.write_text("import controller.cyc_b\n")
    b.write_text("import controller.cyc_a\n")
    sys.path.insert(0, str(tree_copy))
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in PACKAGES}
    try:
        for k in saved:
            del sys.modules[k]
        graph = grimp.build_graph(*PACKAGES, cache_dir=None)
        assert ["controller.cyc_a", "controller.cyc_b"] in _cycles(graph)
    finally:
        sys.path.remove(str(tree_copy))
        for k in [k for k in sys.modules if k.split(".")[0] in PACKAGES]:
            del sys.modules[k]
        sys.modules.update(saved)
        a.unlink()
        b.unlink()


def _core_files() -> list[Path]:
    files: list[Path] = []
    for entry in CORE:
        path = ROOT / "controller" / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pure_core_uses_no_event_loop_clock_logging_or_storage(path: Path) -> None:
    used: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            used |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            used.add(node.module.split(".")[0])
    assert not used & CORE_BANNED_STDLIB, sorted(used & CORE_BANNED_STDLIB)


#: Longest a product module may be without saying why in its docstring.
MAX_LINES = 300


def _product_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_long_modules_say_why_in_their_docstring() -> None:
    """Small modules, one concept each; a longer one gives a one-line reason."""
    unexplained = []
    for path in _product_modules():
        text = path.read_text()
        if text.count("\n") <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if not any(line.startswith("Over 300 lines: ") for line in doc.splitlines()):
            unexplained.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert unexplained == []
