"""One way the sync agent keeps small state on disk: a JSON file replaced in one rename.

The status file and the erasure state are read by other processes (`clockface sync
--status`) and must survive a power cut whole: a temp file in the same folder,
fsync, then rename, so a reader sees the old document or the new one, never half.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomically(path: Path, doc: Any, mode: int = 0o640) -> None:
    """Replace *path* with *doc* as JSON (sorted, indented), durably and in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
