"""converter.download against a real HTTP server on 127.0.0.1: no network, no TensorFlow, fast.

The server speaks enough HTTP/1.1 to exercise what matters in the field:
Range requests (206 + Content-Range), a connection dropped half-way through a
body, a server that ignores Range, corrupted bytes, 404 and 503.
`RangeServer` is also used by test_vggface.py to run the real download path
of `clockface convert`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from converter import download
from converter.download import DownloadError, default_cache_dir, fetch, verify_local

NAME = "rcmalli_vggface_tf_notop_resnet50.h5"


@dataclass
class RangeServer:
    """Serves `files` from memory. Behaviour switches are plain attributes, read per request."""

    files: dict[str, bytes]
    corrupt: bool = False  # flip one byte in every body served
    drop_first: bool = False  # first GET: send headers + half the body, then cut the connection
    ignore_range: bool = False  # answer 200 with the whole file even when asked for a range
    status: int | None = None  # answer every request with this status and no body
    requests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                owner._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/releases/download/v2.0/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        rng = h.headers.get("Range")
        self.requests.append({"path": h.path, "range": rng})
        if self.status is not None:
            h.send_response(self.status)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        name = h.path.rsplit("/", 1)[-1]
        if name not in self.files:
            h.send_error(404)
            return
        body = self.files[name]
        if self.corrupt:
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and not self.ignore_range:
            start = int(match.group(1))
            if start >= len(body):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(body)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            h.send_response(200)
        chunk = body[start:]
        h.send_header("Content-Length", str(len(chunk)))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        if self.drop_first and len(self.requests) == 1:
            h.wfile.write(chunk[: len(chunk) // 2])
            h.wfile.flush()
            h.close_connection = True
            return  # the handler returns: the socket closes with the body half sent
        h.wfile.write(chunk)


@pytest.fixture
def payload() -> bytes:
    # Not a multiple of the 64 KiB read size, big enough for several reads.
    return hashlib.sha256(b"seed").digest() * 9000 + b"tail"


@pytest.fixture
def server(payload: bytes):
    srv = RangeServer({NAME: payload})
    yield srv
    srv.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get(server: RangeServer, cache: Path, digest: str | None, **kw) -> Path:
    kw.setdefault("retries", 3)
    return fetch(
        NAME, sha256=digest, cache_dir=cache, base_url=server.base_url, progress=False, sleep=lambda s: None, **kw
    )


def test_download_is_verified_and_cached(server: RangeServer, payload: bytes, tmp_path: Path) -> None:
    path = get(server, tmp_path, sha(payload))
    assert path == tmp_path / NAME and path.read_bytes() == payload
    assert not (tmp_path / (NAME + ".part")).exists()
    assert get(server, tmp_path, sha(payload).upper()) == path  # from the cache, hash checked again
    assert len(server.requests) == 1


def test_corrupted_download_is_rejected_and_deleted(server: RangeServer, payload: bytes, tmp_path: Path) -> None:
    server.corrupt = True
    with pytest.raises(DownloadError, match=r"does not match the expected .*the file was deleted") as err:
        get(server, tmp_path, sha(payload))
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # neither the final name nor a .part


def test_interrupted_download_resumes_with_range(server: RangeServer, payload: bytes, tmp_path: Path) -> None:
    server.drop_first = True
    path = get(server, tmp_path, sha(payload))
    assert path.read_bytes() == payload
    assert [r["range"] for r in server.requests] == [None, f"bytes={(len(payload)) // 2}-"]


def test_partial_file_from_an_earlier_run_is_resumed(server: RangeServer, payload: bytes, tmp_path: Path) -> None:
    (tmp_path / (NAME + ".part")).write_bytes(payload[:1000])
    assert get(server, tmp_path, sha(payload)).read_bytes() == payload
    assert [r["range"] for r in server.requests] == ["bytes=1000-"]


def test_complete_partial_file_is_checked_not_refetched(server: RangeServer, payload: bytes, tmp_path: Path) -> None:
    (tmp_path / (NAME + ".part")).write_bytes(payload)  # crashed after the last byte, before the rename
    assert get(server, tmp_path, sha(payload)).read_bytes() == payload
    assert [r["range"] for r in server.requests] == [f"bytes={len(payload)}-"]  # answered 416


def test_server_ignoring_range_restarts_cleanly(server: RangeServer, payload: bytes, tmp_path: Path) -> None:
    (tmp_path / (NAME + ".part")).write_bytes(b"x" * 5000)  # junk that must not be kept
    server.ignore_range = True
    assert get(server, tmp_path, sha(payload)).read_bytes() == payload


def test_cached_file_that_no_longer_matches_is_fetched_again(
    server: RangeServer, payload: bytes, tmp_path: Path
) -> None:
    (tmp_path / NAME).write_bytes(b"bit rot")
    assert get(server, tmp_path, sha(payload)).read_bytes() == payload
    assert len(server.requests) == 1


def test_hash_is_required_when_none_is_pinned(server: RangeServer, tmp_path: Path) -> None:
    assert download.RELEASE_FILES[NAME].sha256 is None  # honest: unknown on the machine this was built on
    with pytest.raises(DownloadError, match=r"no pinned SHA-256 .* pass --sha256"):
        get(server, tmp_path, None)
    assert server.requests == []


def test_malformed_hash_is_a_clear_error(server: RangeServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="not a SHA-256"):
        get(server, tmp_path, "abc123")


def test_user_hash_contradicting_a_pinned_one_is_refused(
    server: RangeServer, payload: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(download.RELEASE_FILES, NAME, download.ReleaseFile(NAME, sha(payload)))
    with pytest.raises(DownloadError, match="contradicts the pinned"):
        get(server, tmp_path, "0" * 64)
    assert get(server, tmp_path, None).read_bytes() == payload  # the pinned hash alone suffices


def test_not_found_is_final(server: RangeServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(
            "rcmalli_vggface_tf_notop_vgg16.h5",
            sha256="0" * 64,
            cache_dir=tmp_path,
            base_url=server.base_url,
            progress=False,
            sleep=lambda s: None,
        )
    assert len(server.requests) == 1


def test_server_errors_are_retried_with_backoff(server: RangeServer, payload: bytes, tmp_path: Path) -> None:
    server.status = 503
    waits: list[float] = []
    with pytest.raises(DownloadError, match="failed after 4 attempts: HTTP 503"):
        fetch(
            NAME,
            sha256=sha(payload),
            cache_dir=tmp_path,
            base_url=server.base_url,
            progress=False,
            retries=3,
            backoff=0.5,
            sleep=waits.append,
        )
    assert waits == [0.5, 1.0, 2.0] and len(server.requests) == 4


def test_unreachable_server_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="failed after 2 attempts: cannot reach") as err:
        fetch(
            NAME,
            sha256="0" * 64,
            cache_dir=tmp_path,
            base_url="http://127.0.0.1:9/",
            progress=False,
            retries=1,
            sleep=lambda s: None,
            timeout=2,
        )
    assert "\n" not in str(err.value)


def test_default_cache_dir_follows_xdg() -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/clockface/weights")
    # The XDG spec says relative paths are invalid and must be ignored.
    assert default_cache_dir({"XDG_CACHE_HOME": "rel", "HOME": "/h"}) == Path("/h/.cache/clockface/weights")
    assert default_cache_dir({"HOME": "/h"}) == Path("/h/.cache/clockface/weights")


def test_local_weights_file_is_hashed_and_optionally_checked(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "copied-from-usb.h5"
    path.write_bytes(payload)
    assert verify_local(path, None) == sha(payload)
    assert verify_local(path, sha(payload)) == sha(payload)
    with pytest.raises(DownloadError, match="does not match"):
        verify_local(path, "f" * 64)
