"""`reload` {}: the daemon reads its configuration file again and applies it — the same path as
SIGHUP (`agent.daemon.app.Daemon.reload`) — and answers what it applied, for the owner's page,
whose user may not signal the daemon.

What a reload applies, exactly: the cameras' recording (an added camera starts recording, a
removed one stops, one whose stream, address or password changed restarts; the others keep
recording without a gap, taking their new name and location as they are). What it does not:
what the RTCC is shown (camera names, locations, the cameras listed) and every setting outside
`[[cameras]]` take effect at the daemon's next restart; `later` names those settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ReloadOutcome:
    """What one reload did. `applied` False: the configuration in use stays (`reason` says
    why, in words); the camera lists are then empty."""

    applied: bool
    reason: str = ""
    kept: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    later: list[str] = field(default_factory=list)  # settings applied at the next restart
    cameras: list[dict[str, Any]] = field(default_factory=list)  # the cameras now in use

    def json(self) -> dict[str, Any]:
        return asdict(self)


Reloader = Callable[[], Awaitable[ReloadOutcome]]


async def reload(reloader: Reloader | None) -> dict[str, Any]:
    if reloader is None:
        return ReloadOutcome(False, "this daemon cannot reload its configuration").json()
    return (await reloader()).json()
