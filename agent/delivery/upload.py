"""HTTPS PUT of one file to a URL the RTCC gave (an S3-style presigned URL or the hub's receiver).

What one `Uploader.put` does, and why:

* **The destination is checked again at upload time** against `policy.allowed_upload_hosts`
  (https, plain http only to this machine), because the owner's list may have changed since the
  request was accepted. Redirects are not followed blindly: a 307/308 to the same host is a new
  attempt at the new URL (checked again); any other redirect is refused, so a server can never
  send footage somewhere the owner did not allow.
* **The body is streamed from disk** (never held in memory) with `Content-Length` (S3 presigned
  PUTs require it) and the URL sent exactly as given (`encoded=True`): re-quoting a presigned
  query string would break its signature.
* **Retries** with full-jitter exponential backoff (AWS's "full jitter": a delay drawn from
  [0, min(cap, base·2ⁿ⁻¹)]) on connection errors, stalls, 5xx, 408 and 429; `Retry-After`
  (seconds or an HTTP date) is honoured instead of the backoff. Any other 4xx, a TLS certificate
  the site does not trust, or a refused redirect ends the upload at once. No retry starts that
  could not begin before the deadline (the retry budget, capped by the request's expiry): a
  server asking to come back after the deadline fails the upload now rather than later.
* **Bandwidth and concurrency** are site-wide: every chunk draws from one `TokenBucket`, and at
  most `concurrency` attempts transfer at once (a slot is not held while waiting to retry).
* A transfer that makes no progress for `stall_timeout` seconds is aborted (and retried): a
  server that stops reading would otherwise hold the upload forever.
* Success means a 2xx answer after the whole body was sent. Cancelling the task aborts the
  connection at once.

Only the host of a URL is ever logged or reported: a presigned URL is a credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import io
import random
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from yarl import URL

from agent import __version__
from agent.delivery.bandwidth import TokenBucket
from agent.log import get_logger
from agent.policy import destination_problem

log = get_logger(__name__)

CHUNK_BYTES = 256 * 1024
MAX_REDIRECTS = 3
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
CONNECT_TIMEOUT = 30.0
STALL_TIMEOUT = 60.0
PROGRESS_INTERVAL = 2.0
PROGRESS_STEP = 0.10
_RETRY_STATUSES = frozenset({408, 429})
_ERROR_BODY_BYTES = 4096
_MAX_RETRY_AFTER_TEXT = 64
_LINGER_ZERO = struct.pack("ii", 1, 0)

Progress = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True)
class Attempt:
    """One try at sending the body: its HTTP status (None if there was no answer) or error."""

    number: int
    status: int | None
    error: str | None
    bytes_sent: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.number,
            "status": self.status,
            "error": self.error,
            "bytes_sent": self.bytes_sent,
            "seconds": round(self.seconds, 3),
        }


AttemptHook = Callable[[Attempt], Awaitable[None]]


@dataclass(frozen=True)
class UploadResult:
    host: str
    bytes: int
    status: int
    seconds: float
    attempts: tuple[Attempt, ...]


class UploadFailed(Exception):
    """The upload did not succeed and will not be retried (the message says why)."""

    def __init__(
        self, message: str, *, status: int | None = None, attempts: Sequence[Attempt] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.attempts = tuple(attempts)


def retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """A `Retry-After` header as seconds from `now` (epoch seconds); None if absent or unusable.

    RFC 9110: either a number of seconds or an HTTP date; a date in the past means now.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_RETRY_AFTER_TEXT:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return max(0.0, moment.timestamp() - now)
    except (OverflowError, OSError, ValueError):
        return None


def backoff_delay(attempt: int, *, base: float, cap: float, rng: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^(attempt-1)))."""
    ceiling = min(cap, base * float(2 ** min(attempt - 1, 32)))
    return rng() * ceiling


class ProgressThrottle:
    """Reports progress when 2 s have passed or another 10 % was sent since the last report,
    whichever comes first; never the end (the final event says that)."""

    def __init__(
        self,
        total: int,
        report: Progress,
        *,
        interval: float = PROGRESS_INTERVAL,
        step: float = PROGRESS_STEP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self._report = report
        self._interval = interval
        self._step = max(1, int(total * step))
        self._clock = clock
        self._last_bytes = 0
        self._last_time = clock()

    async def update(self, sent: int) -> None:
        if sent >= self.total:
            return
        now = self._clock()
        if sent - self._last_bytes >= self._step or now - self._last_time >= self._interval:
            self._last_bytes, self._last_time = sent, now
            await self._report(sent, self.total)

    def restart(self) -> None:
        """A new attempt starts from byte 0."""
        self._last_bytes, self._last_time = 0, self._clock()


# The connections the current attempt opened or took from the pool (set per attempt, per task).
_ATTEMPT_TRANSPORTS: contextvars.ContextVar[list[asyncio.Transport] | None] = (
    contextvars.ContextVar("upload_attempt_transports", default=None)
)


class _AbortableConnector(aiohttp.TCPConnector):
    """Remembers which connections an attempt uses, so that cancelling it (or giving up on a
    stalled server) can abort them: a plain close waits for the unsent body to drain first,
    which a server that stopped reading never lets happen."""

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp passes it by this name
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        used = _ATTEMPT_TRANSPORTS.get()
        if used is not None and connection.transport is not None:
            # The transport itself: the connection forgets it once released.
            used.append(connection.transport)
        return connection


def _abort(transports: list[asyncio.Transport]) -> None:
    """Drop the connections now: a reset (linger 0) rather than a close, so that the kernel
    does not go on trying to deliver the body already handed to it."""
    for transport in transports:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        transport.abort()


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"


def _clean(text: str, limit: int = 200) -> str:
    printable = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(printable.split())[:limit]


@dataclass(frozen=True)
class _Answer:
    status: int | None
    error: str | None
    fatal: bool = False  # an error no retry can fix
    retry_after: float | None = None
    location: str | None = None
    detail: str = ""


class Uploader:
    """Site-wide upload machinery: one HTTP session, the bandwidth cap and the concurrency cap.

    Open with `async with Uploader(...)` (or `start()` / `close()`).
    """

    def __init__(
        self,
        *,
        allowed_hosts: Sequence[str],
        tls: ssl.SSLContext | None = None,
        bandwidth: TokenBucket | None = None,
        concurrency: int = 2,
        connect_timeout: float = CONNECT_TIMEOUT,
        stall_timeout: float = STALL_TIMEOUT,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.allowed_hosts = list(allowed_hosts)
        self._tls: ssl.SSLContext | bool = tls if tls is not None else True
        self._bandwidth = bandwidth
        self._slots = asyncio.Semaphore(concurrency)
        self._connect_timeout = connect_timeout
        self._stall = stall_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._clock = clock
        self._rng = rng
        self._sleep = sleep
        self._chunk = (
            chunk_bytes if bandwidth is None else max(1, min(chunk_bytes, bandwidth.burst))
        )
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout)
            self._session = aiohttp.ClientSession(
                connector=_AbortableConnector(),
                timeout=timeout,
                headers={"User-Agent": f"rtcc-edge/{__version__}"},
                auto_decompress=False,
                trust_env=False,  # an owner's proxy variables must not reroute evidence
            )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __aenter__(self) -> Uploader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def check_destination(self, url: str) -> None:
        """UploadFailed if `url` may not receive footage now."""
        problem = destination_problem(
            url, self.allowed_hosts, secure="https", plain="http", what="upload"
        )
        if problem is not None:
            raise UploadFailed(problem)

    async def put(
        self,
        url: str,
        body: Path | bytes,
        *,
        content_type: str,
        deadline: float,
        headers: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        on_start: Callable[[int], Awaitable[None]] | None = None,
        on_attempt: AttemptHook | None = None,
        on_retry_after: Callable[[float], Awaitable[None]] | None = None,
        sent_log: list[Attempt] | None = None,
    ) -> UploadResult:
        """PUT `body` (a file, streamed, or bytes) to `url`; retry until `deadline` (epoch s).

        `on_start(n)` runs before attempt n sends anything (so an attempt cut short by a
        cancellation is counted too), `on_attempt(attempt)` after it, `on_retry_after(t)` when
        the server asked not to be tried again before epoch time `t` (so that it can be kept
        across a restart), before the wait. `sent_log`, if given, gets every attempt as it ends,
        also one cut short by a cancellation (with the bytes it had sent): what left the site is
        known whatever happens. Raises UploadFailed (with the attempts made) when it gives up.
        """
        if self._session is None:
            raise RuntimeError("the uploader is not started")
        size = len(body) if isinstance(body, bytes) else await asyncio.to_thread(_size, body)
        sent_headers = {"Content-Type": content_type}
        for name, value in (headers or {}).items():
            if name.lower() == "content-type":
                sent_headers.pop("Content-Type", None)
            sent_headers[name] = value
        sent_headers["Content-Length"] = str(size)
        throttle = ProgressThrottle(size, progress) if progress is not None else None
        started = time.monotonic()
        attempts: list[Attempt] = []
        current = url
        redirects = 0
        while True:
            try:
                self.check_destination(current)
            except UploadFailed as exc:
                raise UploadFailed(exc.message, attempts=attempts) from None
            number = len(attempts) + 1
            if throttle is not None:
                throttle.restart()
            if on_start is not None:
                await on_start(number)
            answer, attempt = await self._attempt(
                number, current, body, size, sent_headers, throttle, sent_log
            )
            attempts.append(attempt)
            if sent_log is not None:
                sent_log.append(attempt)
            if on_attempt is not None:
                await on_attempt(attempt)
            host = _host(current)
            log.info(
                "upload_attempt",
                host=host,
                attempt=number,
                status=answer.status,
                error=answer.error,
                bytes_sent=attempt.bytes_sent,
                seconds=round(attempt.seconds, 3),
            )
            status = answer.status
            if status is not None and 200 <= status < 300:
                return UploadResult(
                    host=host,
                    bytes=size,
                    status=status,
                    seconds=time.monotonic() - started,
                    attempts=tuple(attempts),
                )
            if status is not None and 300 <= status < 400:
                current = self._redirect(current, answer, attempts)
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise UploadFailed(
                        f"more than {MAX_REDIRECTS} redirects from {host}", attempts=attempts
                    )
                continue
            reason = self._describe(host, answer)
            retryable = not answer.fatal and (
                status is None or status >= 500 or status in _RETRY_STATUSES
            )
            if not retryable:
                raise UploadFailed(reason, status=status, attempts=attempts)
            if answer.retry_after is not None:
                delay = answer.retry_after
            else:
                delay = backoff_delay(
                    number, base=self._backoff_base, cap=self._backoff_cap, rng=self._rng
                )
            remaining = deadline - self._clock()
            if delay > remaining:
                why = (
                    f"the server asked to retry in {delay:.0f} s"
                    if answer.retry_after is not None
                    else "the retry budget is spent"
                )
                raise UploadFailed(
                    f"gave up after {number} attempt{'s' if number > 1 else ''}: {reason} "
                    f"({why}, {max(0.0, remaining):.0f} s left)",
                    status=status,
                    attempts=attempts,
                )
            if answer.retry_after is not None and on_retry_after is not None:
                await on_retry_after(self._clock() + delay)
            await self._sleep(delay)

    def _redirect(self, current: str, answer: _Answer, attempts: list[Attempt]) -> str:
        host = _host(current)
        if not answer.location:
            raise UploadFailed(
                f"{host} answered HTTP {answer.status} without a Location", attempts=attempts
            )
        target = urljoin(current, answer.location)
        parts, before = urlsplit(target), urlsplit(current)
        same_place = (parts.scheme, parts.hostname, parts.port) == (
            before.scheme,
            before.hostname,
            before.port,
        )
        if answer.status not in (307, 308) or not same_place:
            raise UploadFailed(
                f"{host} redirected the upload (HTTP {answer.status}) to "
                f"{parts.hostname or '?'}: refused, uploads only go where the request said",
                status=answer.status,
                attempts=attempts,
            )
        return target

    @staticmethod
    def _describe(host: str, answer: _Answer) -> str:
        if answer.status is None:
            return f"{host}: {answer.error}"
        detail = f" ({answer.detail})" if answer.detail else ""
        return f"{host} answered HTTP {answer.status}{detail}"

    async def _attempt(
        self,
        number: int,
        url: str,
        body: Path | bytes,
        size: int,
        headers: dict[str, str],
        throttle: ProgressThrottle | None,
        sent_log: list[Attempt] | None = None,
    ) -> tuple[_Answer, Attempt]:
        assert self._session is not None
        sent = 0
        began = time.monotonic()

        async def chunks(handle: BinaryIO, timer: asyncio.Timeout) -> AsyncIterator[bytes]:
            nonlocal sent
            loop = asyncio.get_running_loop()
            # Reads go to a thread: a slow disk (an SD card) must not stall the event loop.
            while chunk := await asyncio.to_thread(handle.read, self._chunk):
                if self._bandwidth is not None:
                    await self._bandwidth.take(len(chunk))
                timer.reschedule(loop.time() + self._stall)
                yield chunk
                sent += len(chunk)
                if throttle is not None:
                    await throttle.update(sent)

        def done(answer: _Answer) -> tuple[_Answer, Attempt]:
            attempt = Attempt(number, answer.status, answer.error, sent, time.monotonic() - began)
            return answer, attempt

        used: list[asyncio.Transport] = []
        _ATTEMPT_TRANSPORTS.set(used)
        async with self._slots:
            try:
                with await asyncio.to_thread(_open, body) as handle:
                    async with (
                        asyncio.timeout(self._stall) as timer,
                        self._session.put(
                            URL(url, encoded=True),
                            data=chunks(handle, timer),
                            headers=headers,
                            allow_redirects=False,
                            ssl=self._tls,
                        ) as response,
                    ):
                        timer.reschedule(asyncio.get_running_loop().time() + self._stall)
                        status = response.status
                        raw = await response.content.read(_ERROR_BODY_BYTES)
                        location = response.headers.get("Location")
                        retry_after = retry_after_seconds(
                            response.headers.get("Retry-After"), now=self._clock()
                        )
            except asyncio.CancelledError:
                _abort(used)
                if sent_log is not None:
                    sent_log.append(
                        Attempt(number, None, "cancelled", sent, time.monotonic() - began)
                    )
                raise
            except aiohttp.ClientConnectorCertificateError as exc:
                error = f"TLS certificate of {_host(url)} is not trusted: {exc.certificate_error}"
                return done(_Answer(None, error, fatal=True))
            except TimeoutError:
                _abort(used)
                return done(_Answer(None, f"no progress for {self._stall:g} s"))
            except (aiohttp.ClientError, OSError) as exc:
                return done(_Answer(None, _clean(f"{type(exc).__name__}: {exc}")))
        if 200 <= status < 300 and sent < size:
            error = f"answered HTTP {status} after {sent} of {size} bytes"
            return done(_Answer(None, error))
        detail = "" if 200 <= status < 400 else _clean(raw.decode("utf-8", "replace"))
        return done(
            _Answer(status, None, retry_after=retry_after, location=location, detail=detail)
        )


def _size(path: Path) -> int:
    return path.stat().st_size


def _open(body: Path | bytes) -> BinaryIO:
    if isinstance(body, bytes):
        return io.BytesIO(body)
    return body.open("rb")
