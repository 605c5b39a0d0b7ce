"""Download source weights into a cache, resumably, and never use a file whose SHA-256 is wrong.

keras-vggface fetches its weights from its GitHub release at run time and
checks nothing. Here every downloaded file must match a SHA-256 before it is
used: either one pinned in `RELEASE_FILES`, or one the user passes. A file
that does not match is deleted, never renamed into the cache.

How a download survives a bad network:
- bytes go to `<cache>/<file>.part`; the final name only appears (atomic
  `os.replace`) after the whole file is there and its hash matched, so a
  crash leaves at worst a `.part` file and never a half file under the real
  name;
- a `.part` left by an interrupted attempt (this run or an earlier one) is
  resumed with an HTTP `Range` request; a server that ignores `Range`
  (answers 200) makes us start over, which is slower but still correct;
- connection errors, short reads, timeouts and 5xx/429 answers are retried
  with exponential back-off; other HTTP errors (404, 403) are final.

Standard library only (urllib), plus tqdm for the progress bar.

Why not pooch (the well-kept downloader SciPy and scikit-image use): it does
not resume. Measured with pooch 1.9.0 against the dropping server of
tests/converter/test_download.py, a 100 MB file cut off at 50 MB: pooch's
retry (`retry_if_failed`) sent no `Range` header and fetched all 100 MB
again, 150 MB in total, where this module asks for `bytes=52428800-`. Its
source says the same: `pooch.core.stream_download` starts every attempt in a
new temporary file that is deleted on failure, and `HTTPDownloader` never sets
`Range`. The source weights are files of about this size, fetched over links
that drop: a download that restarts from zero may never finish, so resuming
is the measured need. (pooch would also bring requests and its dependencies
into the converter.)
"""

from __future__ import annotations

import http.client
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from device import paths
from device.vision.model_card import sha256_file

# The keras-vggface v2.0 GitHub release: the URLs keras_vggface/utils.py uses.
DEFAULT_BASE_URL = "https://github.com/rcmalli/keras-vggface/releases/download/v2.0/"

_CHUNK = 1 << 16
_USER_AGENT = "clockface-converter (urllib)"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(RuntimeError):
    """A download that failed or a file that failed its hash check; the message is one line."""


@dataclass(frozen=True)
class ReleaseFile:
    """One file of the upstream release and the hash we trust for it.

    `sha256` is None where this project has not been able to compute the
    hash itself: the release cannot be reached from the machines it is built
    on, and a hash copied from an unverified web page would be worse than
    none, because it would look trustworthy. With None the user must pass
    `--sha256`.
    """

    filename: str
    sha256: str | None = None


RELEASE_FILES: dict[str, ReleaseFile] = {
    name: ReleaseFile(name)
    for name in (
        "rcmalli_vggface_tf_notop_resnet50.h5",
        "rcmalli_vggface_tf_notop_senet50.h5",
        "rcmalli_vggface_tf_notop_vgg16.h5",
    )
}


# `$XDG_CACHE_HOME/clockface/weights`, else `~/.cache/clockface/weights`: decided in device/paths.py.
default_cache_dir = paths.weights_cache_dir


def normalise_sha256(value: str) -> str:
    """Lower-case 64 hex digits, or a one-line error: a typo must not look like a mismatch."""
    digest = value.strip().lower()
    if not _HEX64.match(digest):
        raise DownloadError(f"not a SHA-256 (64 hex digits): {value!r}")
    return digest


def expected_sha256(filename: str, user_sha256: str | None) -> str:
    """The hash a file must have: the pinned one, the user's, or an error if neither exists.

    A user hash that contradicts a pinned one is refused rather than silently
    preferred: one of the two is wrong, and we cannot tell which.
    """
    pinned = RELEASE_FILES.get(filename, ReleaseFile(filename)).sha256
    user = normalise_sha256(user_sha256) if user_sha256 else None
    if pinned and user and pinned != user:
        raise DownloadError(f"--sha256 {user} contradicts the pinned SHA-256 {pinned} of {filename}")
    digest = pinned or user
    if digest is None:
        raise DownloadError(
            f"no pinned SHA-256 for {filename}: pass --sha256 with the hash of the file from a source you trust"
        )
    return digest


class _Retryable(Exception):
    """A failure worth another attempt (network, short read, 5xx)."""


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=timeout)


def _fetch_once(url: str, part: Path, timeout: float, progress: bool, label: str) -> None:
    """One attempt: append to (or restart) `part` until the server's length is reached.

    Raises _Retryable for anything a later attempt could fix, DownloadError for
    the rest. Leaves `part` in place so the next attempt can resume it.
    """
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Range past the end: the .part is probably already complete.
            # The hash check that follows decides; a bad one is deleted there.
            return
        if exc.code >= 500 or exc.code == 429:
            raise _Retryable(f"HTTP {exc.code} from {url}") from None
        raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Retryable(f"cannot reach {url}: {reason}") from None

    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        if status == 206:
            match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                # A range we did not ask for: safer to start over than to splice.
                part.unlink(missing_ok=True)
                raise _Retryable(f"server answered an unexpected range for {url}")
            mode = "ab"
        elif status == 200:
            offset, mode = 0, "wb"  # server ignored Range (or there was none): start over
        else:
            raise DownloadError(f"unexpected HTTP status {status} for {url}")
        total = offset + int(length) if length is not None else None
        received = offset
        with (
            open(part, mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=label,
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            try:
                while True:
                    block = response.read(_CHUNK)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:
                raise _Retryable(f"connection lost after {received} bytes: {exc}") from None
            finally:
                out.flush()
                os.fsync(out.fileno())
        if total is not None and received < total:
            # http.client returns b"" on a dropped connection instead of
            # raising, so a short body is only visible by counting.
            raise _Retryable(f"connection closed after {received} of {total} bytes")


def fetch(
    filename: str,
    *,
    sha256: str | None,
    cache_dir: Path,
    base_url: str = DEFAULT_BASE_URL,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Return the path of `filename` in `cache_dir`, downloading it if needed; always hash-checked.

    `sha256` is the user's hash (or None to rely on the pinned one). The result
    has been verified in this call, also when it came from the cache: a cached
    file that no longer matches is deleted and downloaded again.
    """
    expected = expected_sha256(filename, sha256)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / filename
    part = cache_dir / (filename + ".part")

    if final.exists():
        if sha256_file(final) == expected:
            return final
        final.unlink()  # stale or corrupted: never used, fetched again below

    url = base_url.rstrip("/") + "/" + filename
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            _fetch_once(url, part, timeout, progress, filename)
            break
        except _Retryable as exc:
            last_error = str(exc)
    else:
        raise DownloadError(f"download of {filename} failed after {retries + 1} attempts: {last_error}")

    if not part.exists():
        raise DownloadError(f"download of {filename} produced no file")
    actual = sha256_file(part)
    if actual != expected:
        part.unlink()
        raise DownloadError(
            f"{filename}: SHA-256 {actual} does not match the expected {expected}; the file was deleted"
        )
    os.replace(part, final)
    return final


def verify_local(path: Path, sha256: str | None) -> str:
    """Hash a user-supplied weights file; if a hash was given (or pinned for its name), it must match.

    Returns the file's SHA-256 for the sidecar either way.
    """
    actual = sha256_file(path)
    pinned = RELEASE_FILES.get(path.name, ReleaseFile(path.name)).sha256
    wanted = normalise_sha256(sha256) if sha256 else pinned
    if wanted and actual != wanted:
        raise DownloadError(f"{path}: SHA-256 {actual} does not match the expected {wanted}")
    return actual
