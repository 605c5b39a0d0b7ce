"""Write tests/constraints.txt: the exact versions the tests ran with, for what clockface declares.

Run it with the Python of the environment the tests passed in (the dev venv):

    .venv/bin/python tests/make_constraints.py > tests/constraints.txt

It starts from every requirement in pyproject.toml (dependencies and all
extras), follows their own requirements through the installed metadata
(markers evaluated for this machine, extras only where asked for), and pins
each installed distribution it reaches at its installed version. Packages
in the venv that nothing of ours needs (pip, the developer's tools) are left
out, so the file constrains only what `pip install .[...]` would install.
Installs use it with `pip install -c tests/constraints.txt`: a constraint never
adds a package, it only fixes the version of one that is being installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
# Installed by setup.sh with --no-deps (its metadata would pull the full `tensorflow`).
ALSO_PINNED = ("tf-keras",)
# Installer tooling some packages list as requirements (datasette lists pip and
# setuptools): pinning it would fight `pip install --upgrade pip` and build backends.
NOT_PINNED = {"pip", "setuptools", "wheel"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(pyproject: dict) -> list[Requirement]:
    project = pyproject["project"]
    reqs = [*project.get("dependencies", [])]
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    return [Requirement(r) for r in [*reqs, *ALSO_PINNED]]


def closure(roots: list[Requirement]) -> dict[str, str]:
    """Installed name -> version for every distribution the roots need on this machine."""
    pinned: dict[str, str] = {}
    todo = [(r, frozenset(r.extras)) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, extras = todo.pop()
        key = (canonical(req.name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            continue  # a marker-gated requirement for another platform (e.g. armv7l)
        if canonical(req.name) in NOT_PINNED:
            continue
        pinned[canonical(dist.metadata["Name"])] = dist.version
        for text in dist.requires or []:
            sub = Requirement(text)
            envs = [{"extra": e} for e in extras] or [{"extra": ""}]
            if sub.marker is None or any(sub.marker.evaluate(env) for env in envs):
                todo.append((sub, frozenset(sub.extras)))
    return pinned


def main() -> None:
    roots = [
        r
        for r in declared(tomllib.loads((REPO / "pyproject.toml").read_text()))
        if r.marker is None or r.marker.evaluate()
    ]
    pins = closure(roots)
    major, minor = sys.version_info[:2]
    print(f"# Exact versions the tests ran with (Python {major}.{minor}), for clockface's declared dependencies.")
    print("# Regenerate from the venv the tests passed in:")
    print("#   .venv/bin/python tests/make_constraints.py > tests/constraints.txt")
    print("# Used by setup.sh and systemd/install-device.sh as `pip install -c tests/constraints.txt ...`.")
    for name in sorted(pins):
        print(f"{name}=={pins[name]}")


if __name__ == "__main__":
    main()
