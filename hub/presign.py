"""Per-request upload URLs for the hub's receiver, signed in the manner of S3 presigned URLs.

    https://hub:8443/upload/{case}/{request id}/{name}?expires=1767225600&sig=<hex>

`sig` is HMAC-SHA256, under a secret kept in `<home>/upload.key` (32 random bytes, mode 0600,
made on first use), over `PUT\\n{path}\\n{expires}`: the method, the exact path and the expiry
(epoch seconds). A URL therefore lets its holder PUT one object, at one place, until it expires
— nothing else. Checking compares in constant time.

Every path segment is restricted to a small safe alphabet (letters, digits, `.`, `_`, `-`; no
`..`), so a path can be used as a directory name under `<home>/cases/` without translation and
reads the same in the URL and on disk.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from agent.fsutil import atomic_create
from hub.state import HubHome, HubStateError

KEY_FILE = "upload.key"
CASES_DIR = "cases"
UPLOAD_PREFIX = "/upload"
_KEY_BYTES = 32
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REQUEST_ID = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE
)
_MAX_EXPIRES_TEXT = 12

CLIP_NAME = "clip.mp4"
SNAPSHOT_NAME = "snapshot.jpg"
MANIFEST_NAME = "manifest.jws"


class PresignError(Exception):
    """A URL that does not grant the upload (the message says why, for the 403 body)."""


def check_segment(value: str, what: str) -> str:
    if not _SEGMENT.match(value) or ".." in value:
        raise ValueError(
            f"{what} {value!r} cannot be used in an upload path: use 1 to 128 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return value


def check_request_id(value: str) -> str:
    if not _REQUEST_ID.match(value):
        raise ValueError(f"request id {value!r} is not a UUID")
    return value.lower()


def upload_path(case: str, request_id: str, name: str) -> str:
    """`/upload/{case}/{request id}/{name}`; ValueError if a part is not allowed."""
    return "/".join(
        (
            UPLOAD_PREFIX,
            check_segment(case, "case"),
            check_request_id(request_id),
            check_segment(name, "name"),
        )
    )


def case_directory(home: HubHome, case: str, request_id: str) -> Path:
    """`<home>/cases/<case>/<request id>/`, where the receiver keeps a request's objects."""
    return home.root / CASES_DIR / check_segment(case, "case") / check_request_id(request_id)


def load_upload_key(home: HubHome) -> bytes:
    """The receiver's HMAC secret, made on first use (0600)."""
    path = home.root / KEY_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return _create_key(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise HubStateError(f"{path}: {exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise HubStateError(f"{path} is not a hex key") from exc
    if len(key) < _KEY_BYTES:
        raise HubStateError(f"{path} holds a key shorter than {_KEY_BYTES} bytes")
    return key


def _create_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(_KEY_BYTES)
    if not atomic_create(path, key.hex() + "\n", mode=0o600):
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    return key


@dataclass(frozen=True)
class UploadSigner:
    key: bytes

    def signature(self, method: str, path: str, expires: int) -> str:
        message = f"{method.upper()}\n{path}\n{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def url(self, base_url: str, path: str, *, expires: int) -> str:
        query = urlencode({"expires": expires, "sig": self.signature("PUT", path, expires)})
        return f"{base_url.rstrip('/')}{path}?{query}"

    def upload_url(
        self, base_url: str, case: str, request_id: str, name: str, *, expires: int
    ) -> str:
        return self.url(base_url, upload_path(case, request_id, name), expires=expires)

    def check(
        self,
        method: str,
        path: str,
        expires: str | None,
        sig: str | None,
        *,
        now: float | None = None,
    ) -> None:
        """PresignError unless `sig` grants `method` on `path` until `expires`, not yet past."""
        if not expires or not sig:
            raise PresignError("the URL is not signed (expires and sig are required)")
        if len(expires) > _MAX_EXPIRES_TEXT or not expires.isascii() or not expires.isdigit():
            raise PresignError("expires is not a time")
        expected = self.signature(method, path, int(expires))
        if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
            raise PresignError("the signature does not match this upload")
        if int(expires) <= (time.time() if now is None else now):
            raise PresignError("the upload URL has expired")


# How long after the request's own expiry its upload URLs still work: the site stops at the
# request's `exp`, but its clock may run a little behind the hub's.
MINT_GRACE_S = 600


@dataclass(frozen=True)
class MintedUpload:
    """Upload URLs minted for one request, and where the receiver will keep what arrives."""

    request_id: str
    upload_url: str
    manifest_url: str
    directory: Path
    object_name: str


def mint_upload(
    home: HubHome,
    *,
    base_url: str,
    cmd: str,
    case: str,
    request_id: str,
    expires: int,
) -> MintedUpload:
    """The upload and manifest URLs of a `clip` or `snapshot` request on this hub's receiver.

    ValueError if `case` cannot be part of an upload path."""
    name = CLIP_NAME if cmd == "clip" else SNAPSHOT_NAME
    signer = UploadSigner(load_upload_key(home))
    deadline = expires + MINT_GRACE_S
    return MintedUpload(
        request_id=request_id,
        upload_url=signer.upload_url(base_url, case, request_id, name, expires=deadline),
        manifest_url=signer.upload_url(base_url, case, request_id, MANIFEST_NAME, expires=deadline),
        directory=case_directory(home, case, request_id),
        object_name=name,
    )
