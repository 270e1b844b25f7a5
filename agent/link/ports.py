"""What the request service needs from the rest of the daemon, as Protocols.

- `Holds`: the clip store (`agent.store.ClipStore` implements it).
- `EventSink`: the MQTT session, which signs each event with the device key and publishes it.
- `Publisher`: what the registry lists right now, and re-publishing registry and status.
- `PendingNotifier`: the owner's optional webhook for requests waiting for approval.
- `DeliveryHandler` and `Job`: the delivery of clips, snapshots and live video (later issues)
  and the per-request reporter the service hands each handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from agent.wire import CameraListing, Event, RejectCode
from agent.wire.requests import ClipRequest, SnapshotRequest, StreamRequest

FootageRequest = ClipRequest | SnapshotRequest | StreamRequest


class Holds(Protocol):
    def place_hold(
        self, hold_id: str, camera: str, start: datetime, end: datetime, *, reason: str = ""
    ) -> None:
        """Keep footage of `camera` in [start, end) from retention; idempotent per `hold_id`."""

    def release_hold(self, hold_id: str) -> bool:
        """Let retention have the window again; False if there was no such hold."""


class EventSink(Protocol):
    async def emit(self, event: Event) -> None:
        """Sign and publish `event` (queued while the broker is away)."""


class Publisher(Protocol):
    """The site's retained messages, as the daemon composes them (session + store + policy)."""

    async def cameras(self) -> list[CameraListing]:
        """The cameras the registry lists now (never a private one)."""

    async def publish_registry(self) -> None:
        """Publish the retained registry again (inventory, a sharing change)."""

    async def publish_status(self) -> None:
        """Publish the retained status again (pause on/off)."""


class PendingNotifier(Protocol):
    async def notify(self, summary: dict[str, Any]) -> None:
        """Tell the owner a request waits for approval; must not raise, may be slow."""


class Job(Protocol):
    """How a delivery handler reports on one request. After a final report (completed, ended,
    failed) or once the request was cancelled, further reports are ignored."""

    @property
    def request_id(self) -> str: ...

    @property
    def is_final(self) -> bool: ...

    @property
    def was_streaming(self) -> bool:
        """The request was already `streaming` when this job was made: a live session cut by
        a crash of the agent, handed over again at its restart."""

    async def progress(self, bytes_sent: int, bytes_total: int) -> None: ...

    async def streaming(self, started: datetime) -> None: ...

    async def uploaded(self, nbytes: int, *, host: str) -> None:
        """Record bytes that left the site (ledger `upload`), e.g. the clip and its manifest."""

    async def sending(self, what: str, *, host: str, size: int, sha256: str) -> None:
        """Record, durably, that `what` (clip, snapshot, manifest) is about to go to `host`
        (ledger `upload_started`). LedgerError if it cannot be recorded: then nothing may be
        sent."""

    async def sent(self, details: Mapping[str, Any]) -> None:
        """Record how a `sending` ended (ledger `upload`): `details` has `object`, `outcome`,
        `bytes` (what actually left, every attempt counted), `size`, `host`, `sha256`, the
        attempts; who asked and for which case are added from the request."""

    async def completed(self, *, manifest: str | None = None) -> None: ...

    async def ended(
        self,
        reason: str,
        *,
        seconds: float,
        started: datetime | None = None,
        bytes_sent: int | None = None,
        relay_host: str | None = None,
    ) -> None:
        """A live session is over (ledger `live_session`: when it started, how long, how many
        bytes went to which relay, and why it ended)."""

    async def failed(self, code: RejectCode, message: str) -> None: ...


class DeliveryHandler(Protocol):
    async def start(self, request: FootageRequest, job: Job) -> None:
        """Begin delivering (return quickly; run the work in a task of your own).

        Called once when a request is accepted or approved, and again after a daemon restart
        for every request that was accepted or approved but not yet final: a handler that
        cannot resume a request reports `failed`.
        """

    async def cancel(self, request_id: str) -> None:
        """Stop work on the request (it is already marked cancelled)."""
