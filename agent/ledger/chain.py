"""The append-only, hash-chained ledger file and its signed head.

Layout of the ledger directory (`<state_dir>/ledger/`):

- `ledger.jsonl`: one JSON object per line, readable with `cat`:
  `{"seq": 7, "time": "…Z", "kind": "decision", "data": {…}, "prev": "…", "hash": "…"}`.
  `hash` is SHA-256 over the canonical encoding (sorted keys, no white space, ASCII) of the
  entry's `seq`, `time`, `kind`, `data` and `prev`; `prev` is the previous entry's `hash`
  (64 zeros for the first). Each append is one `write()` on an O_APPEND descriptor, then fsync.
- `head.json`: the latest **signed head**: `{"seq", "hash", "time", "jws"}`, the JWS a device-key
  signature over `{"ledger_seq", "ledger_hash"}`. Rewritten atomically at every checkpoint.
- `ledger.lock`: held (flock) by the one process that writes.

A **checkpoint** is an entry of kind `checkpoint` whose data is a device-key JWS over the
entry before it; one is written every `checkpoint_every` entries, when `checkpoint_if_due()`
finds `checkpoint_interval` seconds have passed, when the ledger is opened after a crash and
when it is closed. The signed head then names the checkpoint entry itself, so removing entries
from the end (a cut tail) leaves `head.json` pointing past the end of the file. Entries appended
after the last checkpoint are only protected by the chain and by the head the RTCC witnesses
(`StatusClaims.ledger_seq/ledger_hash`); that is the reason to checkpoint often.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.fsutil import atomic_write, fsync_dir
from agent.identity import DeviceKey
from agent.log import get_logger

if TYPE_CHECKING:
    from agent.ledger.entries import LedgerEntry

log = get_logger(__name__)

LEDGER_FILE = "ledger.jsonl"
HEAD_FILE = "head.json"
LOCK_FILE = "ledger.lock"
GENESIS = "0" * 64
HEAD_TYP = "rtcc-ledger-head"
_FILE_MODE = 0o640
_TAIL_PROBE = 65536


class Kind(StrEnum):
    """What an entry records. `data` fields per kind are listed in `agent.ledger.__init__`."""

    REQUEST_RECEIVED = "request_received"
    UNPARSEABLE = "unparseable"
    DECISION = "decision"
    APPROVAL = "approval"
    DENIAL = "denial"
    REQUEST_CLOSED = "request_closed"
    HOLD_PLACED = "hold_placed"
    HOLD_RELEASED = "hold_released"
    UPLOAD_STARTED = "upload_started"
    UPLOAD = "upload"
    LIVE_SESSION = "live_session"
    SHARING_CHANGED = "sharing_changed"
    PAUSED = "paused"
    RESUMED = "resumed"
    CHECKPOINT = "checkpoint"
    RECOVERED = "recovered"
    OWNER_REFUSED = "owner_refused"


class LedgerError(Exception):
    """The ledger cannot be opened or written (in use, unreadable, or its last entry is bad)."""


class LedgerFormatError(ValueError):
    """A line of the ledger file is not a well-formed entry."""


def canonical(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def entry_hash(seq: int, time_text: str, kind: str, data: Mapping[str, Any], prev: str) -> str:
    body = {"seq": seq, "time": time_text, "kind": kind, "data": data, "prev": prev}
    return hashlib.sha256(canonical(body)).hexdigest()


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time without a zone: {text!r}")
    return moment.astimezone(UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot record a {type(value).__name__} in the ledger")


@dataclass(frozen=True)
class Entry:
    seq: int
    time: str
    kind: str
    data: dict[str, Any]
    prev: str
    hash: str

    @property
    def moment(self) -> datetime:
        return parse_time(self.time)

    def expected_hash(self) -> str:
        return entry_hash(self.seq, self.time, self.kind, self.data, self.prev)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "kind": self.kind,
            "data": self.data,
            "prev": self.prev,
            "hash": self.hash,
        }

    def line(self) -> bytes:
        try:
            return (json.dumps(self.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
        except UnicodeEncodeError:
            # Text that is not valid Unicode (a lone surrogate) cannot be written as UTF-8;
            # escaped, it reads back as the same data, so the entry and its hash still hold.
            return (json.dumps(self.to_json(), ensure_ascii=True) + "\n").encode("ascii")

    @classmethod
    def parse(cls, line: bytes | str) -> Entry:
        """Parse one line; LedgerFormatError says what is wrong with it."""
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise LedgerFormatError(f"not JSON: {exc}") from exc
        if not isinstance(obj, dict) or set(obj) != {"seq", "time", "kind", "data", "prev", "hash"}:
            raise LedgerFormatError("not an object with seq, time, kind, data, prev and hash")
        seq, time_text, kind, data = obj["seq"], obj["time"], obj["kind"], obj["data"]
        prev, digest = obj["prev"], obj["hash"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise LedgerFormatError("seq is not a positive integer")
        if not isinstance(time_text, str) or not isinstance(kind, str):
            raise LedgerFormatError("time and kind must be strings")
        if not isinstance(data, dict):
            raise LedgerFormatError("data is not an object")
        for name, value in (("prev", prev), ("hash", digest)):
            if not isinstance(value, str) or len(value) != 64:
                raise LedgerFormatError(f"{name} is not a SHA-256 hex digest")
        try:
            parse_time(time_text)
        except ValueError as exc:
            raise LedgerFormatError(f"bad time {time_text!r}") from exc
        return cls(seq, time_text, kind, data, prev, digest)


@dataclass(frozen=True)
class LedgerHead:
    """The newest entry: what the status message carries to the RTCC as a witness."""

    seq: int
    hash: str


@dataclass(frozen=True)
class SignedHead:
    seq: int
    hash: str
    time: str
    jws: str

    @classmethod
    def load(cls, path: Path) -> SignedHead | None:
        """The signed head, or None if there is none yet; LedgerFormatError if damaged."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            obj = json.loads(raw)
            return cls(
                seq=int(obj["seq"]), hash=str(obj["hash"]), time=str(obj["time"]), jws=obj["jws"]
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerFormatError(f"{path} is not a signed head: {exc}") from exc


def _last_line(fd: int, size: int) -> tuple[bytes, int]:
    """The last complete line (without its newline) and the offset where complete lines end.

    Bytes after the last newline are a torn write (a crash inside `write()`); the caller
    decides what to do with them.
    """
    probe = _TAIL_PROBE
    while True:
        start = max(0, size - probe)
        chunk = os.pread(fd, size - start, start)
        last_newline = chunk.rfind(b"\n")
        if last_newline >= 0:
            previous = chunk.rfind(b"\n", 0, last_newline)
            if previous >= 0 or start == 0:
                return chunk[previous + 1 : last_newline], start + last_newline + 1
        elif start == 0:
            return b"", 0
        probe *= 2


class Ledger:
    """The writer. One per ledger directory at a time (an exclusive lock enforces it)."""

    def __init__(
        self,
        directory: Path,
        *,
        signer: DeviceKey,
        checkpoint_every: int = 64,
        checkpoint_interval: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Use `Ledger.open()`; this only sets fields."""
        self.directory = directory
        self._signer = signer
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval
        self._clock = clock
        self._fd = -1
        self._lock_fd = -1
        self._seq = 0
        self._hash = GENESIS
        self._since_checkpoint = 0
        self._last_checkpoint_at = clock()
        # Appends and checkpoints run in worker threads (an fsync must not stall the event
        # loop), the checkpoint timer's and delivery's among them: one at a time, so seq and
        # prev never interleave. Reentrant: an append that makes a checkpoint due writes it.
        self._mutex = threading.RLock()
        # The head as one immutable value, replaced whole after each write: the event loop
        # reads it (status messages) without taking the mutex, which an fsync may hold.
        self._head = LedgerHead(0, GENESIS)

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        signer: DeviceKey,
        checkpoint_every: int = 64,
        checkpoint_interval: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> Ledger:
        ledger = cls(
            directory,
            signer=signer,
            checkpoint_every=checkpoint_every,
            checkpoint_interval=checkpoint_interval,
            clock=clock,
        )
        try:
            ledger._open()
        except BaseException:
            ledger._release()
            raise
        return ledger

    def _open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
            self._lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise LedgerError(f"cannot open the ledger in {self.directory}: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise LedgerError(
                f"the ledger in {self.directory} is in use by another process"
            ) from exc
        path = self.directory / LEDGER_FILE
        created = not path.exists()
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, _FILE_MODE)
        except OSError as exc:
            raise LedgerError(f"cannot open {path}: {exc}") from exc
        if created:
            fsync_dir(self.directory)
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        line, complete_end = _last_line(self._fd, size)
        torn = b""
        if complete_end < size:
            torn = os.pread(self._fd, size - complete_end, complete_end)
            os.ftruncate(self._fd, complete_end)
            os.fsync(self._fd)
        last: Entry | None = None
        if line:
            try:
                last = Entry.parse(line)
            except LedgerFormatError as exc:
                raise LedgerError(
                    f"the last entry of {path} is damaged ({exc}); run `rtcc-edge audit verify`"
                ) from exc
            self._seq, self._hash = last.seq, last.hash
            self._head = LedgerHead(last.seq, last.hash)
        if torn:
            log.warning("ledger_torn_tail", bytes=len(torn))
            from agent.ledger.entries import Recovered

            self.append(
                Recovered(
                    reason="incomplete last line removed (written during a crash)",
                    bytes=len(torn),
                    sha256=hashlib.sha256(torn).hexdigest(),
                    preview=torn[:200].decode("utf-8", "replace"),
                )
            )
        if torn or (last is not None and last.kind != Kind.CHECKPOINT):
            self.checkpoint()  # the last run did not close cleanly

    @property
    def head(self) -> LedgerHead:
        """The newest durable entry; never waits for a write in progress."""
        return self._head

    def append(self, record: LedgerEntry) -> Entry:
        """Write one entry (its kind and data from the typed `record`, one model per kind in
        `agent.ledger.entries`) and fsync it; checkpoints when `checkpoint_every` entries are
        due. Blocks for the fsync: from the event loop, call `append_async`. LedgerError if the
        entry is not durable (nothing of it is left in the file then)."""
        kind = record.kind
        with self._mutex:
            entry = self._write(kind.value, record.data())
            if kind != Kind.CHECKPOINT:
                self._since_checkpoint += 1
                if self._since_checkpoint >= self._checkpoint_every:
                    self._checkpoint()
            return entry

    async def append_async(self, record: LedgerEntry) -> Entry:
        """`append` in a worker thread: the event loop never waits for the disk. Returns once
        the entry is durable, so awaiting it keeps "recorded before acted on"."""
        return await asyncio.to_thread(self.append, record)

    async def close_async(self) -> None:
        """`close` in a worker thread (its final checkpoint fsyncs)."""
        await asyncio.to_thread(self.close)

    def _write(self, kind: str, data: Mapping[str, Any]) -> Entry:
        if self._fd < 0:
            raise LedgerError("the ledger is closed")
        stored: dict[str, Any] = json.loads(json.dumps(dict(data), default=_jsonable))
        seq = self._seq + 1
        time_text = format_time(datetime.fromtimestamp(self._clock(), UTC))
        digest = entry_hash(seq, time_text, kind, stored, self._hash)
        entry = Entry(seq, time_text, kind, stored, self._hash, digest)
        line = entry.line()
        size = -1
        try:
            size = os.fstat(self._fd).st_size
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes)")
            os.fsync(self._fd)
        except OSError as exc:
            # A part of the line may have reached the file (a full disk): take it back, or the
            # next entry would be glued to it. The entry was not written; the caller is told.
            if size >= 0:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, size)
            raise LedgerError(f"cannot append to the ledger: {exc.strerror or exc}") from exc
        self._seq, self._hash = seq, digest
        self._head = LedgerHead(seq, digest)
        return entry

    def _sign_head(self, seq: int, digest: str) -> str:
        return self._signer.sign({"ledger_seq": seq, "ledger_hash": digest}, typ=HEAD_TYP)

    def checkpoint(self) -> Entry | None:
        """Sign the current head into the chain and into head.json (None if nothing to sign)."""
        with self._mutex:
            return self._checkpoint()

    def _checkpoint(self) -> Entry | None:
        if self._seq == 0:
            return None
        signed_seq, signed_hash = self._seq, self._hash
        from agent.ledger.entries import Checkpoint

        record = Checkpoint(
            head_seq=signed_seq,
            head_hash=signed_hash,
            kid=self._signer.kid,
            jws=self._sign_head(signed_seq, signed_hash),
        )
        entry = self._write(record.kind.value, record.data())
        head = {
            "seq": entry.seq,
            "hash": entry.hash,
            "time": entry.time,
            "jws": self._sign_head(entry.seq, entry.hash),
        }
        try:
            atomic_write(
                self.directory / HEAD_FILE, json.dumps(head, indent=2).encode(), mode=_FILE_MODE
            )
        except OSError as exc:
            raise LedgerError(f"cannot write the signed head: {exc}") from exc
        self._since_checkpoint = 0
        self._last_checkpoint_at = self._clock()
        return entry

    def checkpoint_if_due(self) -> Entry | None:
        """Checkpoint if entries were added and `checkpoint_interval` seconds have passed."""
        with self._mutex:
            elapsed = self._clock() - self._last_checkpoint_at
            if self._since_checkpoint > 0 and elapsed >= self._checkpoint_interval:
                return self._checkpoint()
            return None

    def close(self) -> None:
        """Checkpoint what is new and release the file (idempotent)."""
        with self._mutex:
            if self._fd >= 0 and self._since_checkpoint > 0:
                with contextlib.suppress(LedgerError):
                    self._checkpoint()
            self._release()

    def _release(self) -> None:
        for name in ("_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)


def iter_lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line without newline, complete) for each line of the ledger file."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            complete = raw.endswith(b"\n")
            yield number, raw.rstrip(b"\n"), complete


def read_entries(directory: Path, *, since: datetime | None = None) -> Iterator[Entry]:
    """Entries in file order (optionally only those at or after `since`).

    Raises LedgerFormatError naming the line at the first line that is not an entry: listing a
    damaged ledger is `verify`'s job, not something to skip over silently.
    """
    path = directory / LEDGER_FILE
    if not path.exists():
        return
    for number, line, _complete in iter_lines(path):
        try:
            entry = Entry.parse(line)
        except LedgerFormatError as exc:
            raise LedgerFormatError(f"{path} line {number}: {exc}") from exc
        if since is None or entry.moment >= since:
            yield entry
