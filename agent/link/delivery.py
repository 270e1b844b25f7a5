"""Delivery handlers by command, and the placeholder that ships until delivery exists.

Clips and snapshots (upload) and live video (tunnel) are delivered by handlers the later issues
implement (`agent.link.ports.DeliveryHandler`). Until a handler is registered for a command,
`PlaceholderDelivery` is used: it logs that delivery is not available in this build and leaves
the request in `accepted` / `approved`. It never reports `completed`: a request nobody
delivered must not look delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.link.job import Job
from agent.link.ports import DeliveryHandler, FootageRequest
from agent.log import get_logger

log = get_logger(__name__)


class PlaceholderDelivery:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def start(self, request: FootageRequest, job: Job) -> None:
        log.warning(
            "delivery_not_available", kind=self.kind, request=job.request_id, camera=request.camera
        )

    async def cancel(self, request_id: str) -> None:
        log.info("delivery_cancel_noop", kind=self.kind, request=request_id)


@dataclass
class DeliveryHandlers:
    clip: DeliveryHandler = field(default_factory=lambda: PlaceholderDelivery("clip"))
    snapshot: DeliveryHandler = field(default_factory=lambda: PlaceholderDelivery("snapshot"))
    stream: DeliveryHandler = field(default_factory=lambda: PlaceholderDelivery("stream"))

    def for_command(self, cmd: str) -> DeliveryHandler:
        handler: DeliveryHandler = getattr(self, cmd)
        return handler
