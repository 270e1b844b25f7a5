"""Owner control: a JSON-lines protocol over a Unix socket between `rtcc-edge` (requests,
approve, deny, sharing, pause, resume, status) and the running daemon, and the owner's webhook.
What each owner command does is the owner's library, `agent.link.owner_actions`, which the
socket calls (`LiveControl` is re-exported from there).
"""

from agent.control.client import ControlClient, ControlError, DaemonNotRunning
from agent.control.protocol import VERSION, ProtocolError, parse_request
from agent.control.server import ControlServer, ControlServerError
from agent.control.webhook import OwnerWebhook
from agent.link.owner_actions import LiveControl

__all__ = [
    "VERSION",
    "ControlClient",
    "ControlError",
    "ControlServer",
    "ControlServerError",
    "DaemonNotRunning",
    "LiveControl",
    "OwnerWebhook",
    "ProtocolError",
    "parse_request",
]
