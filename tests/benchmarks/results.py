"""Where the benchmark scripts leave their tables: docs/results/<script>.md.

The docs include these files (a cog block in docs/accuracy-and-speed.md), so
the numbers a reader sees are the ones a script wrote, never a hand copy.
Each file says where its numbers came from: which script, commit, machine.
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO / "docs" / "results"


def default_results(script: str) -> Path:
    """docs/results/<script name without .py>.md."""
    return RESULTS_DIR / f"{Path(script).stem}.md"


def git_commit(repo: Path = REPO) -> str:
    """The checkout's short commit, with `+changes` when the tree is dirty; `unknown` outside git."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+changes" if dirty.stdout.strip() else "")


def provenance(script: str, when: datetime | None = None, commit: str | None = None) -> str:
    """One line naming the run: script, date, commit, machine."""
    when = when or datetime.now(UTC)
    commit = commit or git_commit()
    return (
        f"_Written by `tests/benchmarks/{Path(script).name}` on {when:%Y-%m-%d %H:%M} UTC at commit {commit}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}._"
    )


def write_results(path: Path, markdown: str, source_line: str) -> Path:
    """Write the provenance line and the tables to `path` (folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{source_line}\n\n{markdown.rstrip()}\n", encoding="utf-8")
    return path
