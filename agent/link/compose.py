"""The link put together: an MQTT session whose requests go to a request service that answers
through that same session.

The two refer to each other (the session needs a request handler when it is made, the service
needs the session to publish to), so the wiring lives here once, for the daemon's link component,
the link benchmark and the end-to-end tests alike.
"""

from __future__ import annotations

from pathlib import Path

from agent.config import AgentConfig
from agent.identity import DeviceKey
from agent.link.backoff import Backoff
from agent.link.delivery import DeliveryHandlers
from agent.link.ports import Holds, PendingNotifier
from agent.link.presence import RegistryProvider, StatusProvider
from agent.link.service import RequestService
from agent.link.session import BrokerSettings, MqttSession, SessionPublisher


class Link:
    """`session` (start/stop it, or use it as an async context manager) and `service` (start it
    before the session, close it after). Raises what `RequestService.open` raises."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        device_key: DeviceKey,
        holds: Holds,
        registry: RegistryProvider,
        status: StatusProvider | None = None,
        handlers: DeliveryHandlers | None = None,
        notifier: PendingNotifier | None = None,
        outbox_path: Path | None = None,
        backoff: Backoff | None = None,
        inbox_size: int = 1000,
    ) -> None:
        self.session = MqttSession(
            site_id=config.site.id,
            broker=BrokerSettings.all_from_config(config.rtcc),
            device_key=device_key,
            on_request=self._on_request,
            on_busy=self._on_busy,
            on_trust=self._on_trust,
            status=status,
            registry=registry,
            outbox_path=outbox_path,
            backoff=backoff,
            inbox_size=inbox_size,
        )
        self.service = RequestService.open(
            config,
            device_key=device_key,
            holds=holds,
            sink=self.session,
            publisher=SessionPublisher(self.session, registry),
            handlers=handlers,
            notifier=notifier,
        )

    async def _on_request(self, payload: bytes) -> bool:
        return await self.service.handle(payload)

    async def _on_busy(self, payload: bytes) -> bool:
        return await self.service.refuse_busy(payload)

    async def _on_trust(self, payload: bytes) -> None:
        self.service.verifier.keys.offer(payload)
