"""The components `rtcc-edge run` adds to the recorders and the store, in start order.

Delivery components register their handlers in `daemon.delivery` when built (before anything
starts), so the link finds them. The live tunnel asks the link's policy again as each session
starts, so a pause or a sharing change since the request was accepted is obeyed. The link
starts first; delivery and the live tunnel start after it and stop before it: a clip stopped
mid-upload is kept for the restart (not failed), and a live session's `ended` event and ledger
entry still go out, while the link is up (the tunnel's stop returns once every session has
ended and written its entry). Deliveries the link resumes at its start wait for the delivery
component to start. The owner's page is not a component: it is a process of its own
(`rtcc-edge owner serve`) that talks to the link's control socket like the owner's CLI.
"""

from __future__ import annotations

from agent.daemon.app import Component, ComponentFactory, Daemon, DaemonError
from agent.daemon.clock_watch import ClockWatch
from agent.daemon.link import LinkComponent, link_component
from agent.delivery import DeliveryService, TlsSetupError, outbound_tls_context
from agent.policy import Policy
from agent.tunnel import TunnelComponent, TunnelManager
from agent.tunnel.manager import policy_admission


def delivery_component(daemon: Daemon) -> Component:
    try:
        outbound_tls_context(daemon.config.upload.ca_file)  # a bad CA file stops the start here
    except TlsSetupError as exc:
        raise DaemonError(str(exc)) from exc
    # Uploads are recorded through each request's job, in the request service's ledger.
    delivery = DeliveryService(daemon.config, store=daemon.store, live=daemon.live)
    daemon.delivery.clip = delivery.clip
    daemon.delivery.snapshot = delivery.snapshot
    return delivery


def _link_policy(daemon: Daemon) -> Policy | None:
    for component in daemon.components:
        if isinstance(component, LinkComponent) and component.service is not None:
            return component.service.policy
    return None


def tunnel_component(daemon: Daemon) -> Component:
    manager = TunnelManager.from_config(
        daemon.config,
        live=daemon.live,
        admission=policy_admission(lambda: _link_policy(daemon)),
    )
    daemon.delivery.stream = manager
    return TunnelComponent(manager)


def clock_watch_component(daemon: Daemon) -> Component:
    return ClockWatch(daemon.config.cameras, state_dir=daemon.config.state_dir, board=daemon.board)


def default_components() -> tuple[ComponentFactory, ...]:
    return (
        link_component,
        delivery_component,
        tunnel_component,
        clock_watch_component,
    )
