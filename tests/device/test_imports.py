"""The import rules of the packages, checked on the real modules rather than by
grepping source text (which a comment would satisfy and a lazy import would slip past):

- importing every device module loads neither TensorFlow nor the converter (a
  terminal has neither installed);
- device/ never imports converter, not even inside a function (the `convert`
  command reaches the CLI through an entry point);
- gallery/ and logs/ import nothing from device/;
- device/ has no import cycles.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import device
from tests.conftest import REPO_ROOT

HEAVY = ("tensorflow", "keras", "tf_keras", "keras_vggface", "converter")


def test_importing_every_device_module_loads_no_tensorflow_or_converter() -> None:
    # `python -m device.cli` is the CLI itself: importing __main__ would run it.
    modules = sorted(
        m.name for m in pkgutil.walk_packages(device.__path__, "device.") if not m.name.endswith(".__main__")
    )
    assert {"device.terminal.service", "device.cli.main", "device.enrolment.folder"} <= set(modules)
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [], "device modules pull these in"


def module_files(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of a first-party package."""
    files = {}
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imported_names(path: Path, module: str, *, module_level_only: bool) -> set[str]:
    """Absolute names `path` imports ("a.b" for `import a.b`; "a.b" and "a.b.c" for
    `from a.b import c`). Imports under `if TYPE_CHECKING:` never run and count only
    when `module_level_only` is false."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_cycles(files: dict[str, Path]) -> list[list[str]]:
    """Cycles among module-level imports (what runs at import time), each as a path a -> ... -> a."""
    graph = {
        name: sorted(n for n in imported_names(path, name, module_level_only=True) if n in files and n != name)
        for name, path in files.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "active" while on the DFS stack, then "done"
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = "active"
        stack.append(node)
        for dep in graph[node]:
            if state.get(dep) == "active":
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name)
    return cycles


def test_device_has_no_import_cycles() -> None:
    files = module_files("device")
    assert len(files) > 30
    assert import_cycles(files) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("from c import x\n")
    (tmp_path / "c.py").write_text("def f():\n    import a  # lazy: not a cycle at import time\nimport b\n")
    files = {p.stem: p for p in tmp_path.glob("*.py")}
    assert import_cycles(files) == [["b", "c", "b"]]


@pytest.mark.parametrize(
    "package,forbidden",
    [
        ("device", "converter"),
        ("gallery", "device"),
        ("logs", "device"),
        ("gallery", "converter"),
        ("logs", "converter"),
    ],
)
def test_dependencies_point_one_way(package: str, forbidden: str) -> None:
    offenders = {
        name: sorted(n for n in imported_names(path, name, module_level_only=False) if n.split(".")[0] == forbidden)
        for name, path in module_files(package).items()
    }
    assert {k: v for k, v in offenders.items() if v} == {}, f"{package} must not import {forbidden}"
