"""The byte-level erasure check: is any piece of a template left in a gallery's files?

Shared by the local erasure test (tests/gallery/test_store.py) and the fleet's
(tests/central/test_gallery_central.py), so "gone" means the same thing for
`clockface gallery remove` and `clockface central remove`.
"""

from __future__ import annotations

from pathlib import Path

PIECE = 16  # bytes: four float32 values; a surviving page fragment is found, a random match is not


def db_files(path: Path) -> list[Path]:
    """The database and any journal / WAL / temp file SQLite or we may leave beside it."""
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name) and not p.name.endswith(".lock"))


def raw_bytes(path: Path) -> bytes:
    """Every byte of the gallery at `path` and of the files beside it."""
    return b"".join(p.read_bytes() for p in db_files(path))


def pieces_left(blob: bytes, raw: bytes) -> int:
    """How many PIECE-byte pieces of `blob` (a template's little-endian float32 bytes) occur in `raw`."""
    return sum(blob[i : i + PIECE] in raw for i in range(0, len(blob), PIECE))
