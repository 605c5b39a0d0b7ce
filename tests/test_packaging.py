"""pyproject.toml declares what the code imports, with lower bounds, and tests/constraints.txt pins it."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("device", "converter", "gallery", "logs")
# Imported, but deliberately not a pip requirement: say why.
NOT_FROM_PIP = {
    "picamera2": "apt's python3-picamera2 (built against apt's libcamera)",
    "tflite_runtime": "armv7l fallback where ai-edge-litert has no wheel (device/vision/embedder.py)",
    "tf_keras": "setup.sh installs it with --no-deps: its metadata pulls the full tensorflow",
    "systemd": "apt's python3-systemd on the device (journal logging, device/cli/log_setup.py); optional",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> dict[str, list[Requirement]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": [Requirement(r) for r in project["dependencies"]]}
    for extra, reqs in project["optional-dependencies"].items():
        groups[extra] = [Requirement(r) for r in reqs]
    return groups


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module name -> files importing it, for every non-stdlib, non-project import."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in (*PACKAGES, "__future__"):
                        found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_every_imported_package_is_declared():
    declared = {canonical(r.name) for reqs in requirements().values() for r in reqs}
    owners = packages_distributions()
    missing = []
    for module, files in sorted(third_party_imports().items()):
        if module in NOT_FROM_PIP:
            continue
        dists = {canonical(d) for d in owners.get(module, [])}
        if not dists & declared:
            missing.append(f"{module} ({', '.join(sorted(dists)) or 'not installed'}) imported by {sorted(files)[0]}")
    assert not missing, "imported but not in pyproject.toml: " + "; ".join(missing)


def test_runtime_dependencies_are_lower_bounds_not_pins():
    """A range in pyproject (what works), the exact tested version in tests/constraints.txt (what ran)."""
    wrong = [
        str(r)
        for r in requirements()["dependencies"]
        if not any(spec.operator in (">=", "~=", ">") for spec in r.specifier)
        or any(spec.operator in ("==", "===") for spec in r.specifier)
    ]
    assert not wrong, f"runtime dependencies need a lower bound and no exact pin: {wrong}"


def test_constraints_pin_every_declared_package_within_its_range():
    pins = {}
    for line in (REPO / "tests" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonical(name)] = version
    problems = []
    for group, reqs in requirements().items():
        for r in reqs:
            if r.marker is not None and not r.marker.evaluate():
                continue
            version = pins.get(canonical(r.name))
            if version is None:
                problems.append(f"{r.name} ({group}) is not pinned")
            elif not r.specifier.contains(version, prereleases=True):
                problems.append(f"{r.name}=={version} is outside {r} ({group})")
    assert not problems, "; ".join(problems)
