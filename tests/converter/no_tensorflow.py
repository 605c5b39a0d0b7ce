"""Run `clockface convert ...` in a subprocess where importing tensorflow/keras raises (the numpy backends' proof)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    BLOCKED = ("tensorflow", "keras", "tf_keras")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    from converter.cli import convert

    convert.main(sys.argv[1:], standalone_mode=False)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(json.dumps({"loaded": loaded}))
    """
)


def convert_without_tensorflow(args: list[str]) -> tuple[dict, list[str]]:
    """(the --json summary, the blocked modules that were loaded anyway) of `clockface convert ARGS --json`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args, "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    summary_text, _, modules_line = run.stdout.rstrip().rpartition("\n")
    return json.loads(summary_text), json.loads(modules_line)["loaded"]
