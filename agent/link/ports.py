"""What the request service needs from the rest of the daemon, as Protocols.

- `Holds`: the clip store (`agent.store.ClipStore` implements it).
- `EventSink`: the MQTT session, which signs each event with the device key and publishes it.
- `Publisher`: what the registry lists right now, and re-publishing registry and status.
- `PendingNotifier`: the owner's optional webhook for requests waiting for approval.
- `DeliveryHandler`: the delivery of clips, snapshots and live video, each handed the request's
  `Job` (`agent.link.job`) to report through.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from agent.wire import CameraListing, Event
from agent.wire.requests import ClipRequest, SnapshotRequest, StreamRequest

if TYPE_CHECKING:
    from agent.link.job import Job

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


class DeliveryHandler(Protocol):
    async def start(self, request: FootageRequest, job: Job) -> None:
        """Begin delivering (return quickly; run the work in a task of your own).

        Called once when a request is accepted or approved, and again after a daemon restart
        for every request that was accepted or approved but not yet final: a handler that
        cannot resume a request reports `failed`.
        """

    async def cancel(self, request_id: str) -> None:
        """Stop work on the request (it is already marked cancelled)."""
