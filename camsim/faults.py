"""Faults a test (or a trainer) switches on and off while a simulated camera runs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Faults:
    """Shared by one camera's RTSP server, ONVIF service and discovery responder.

    unplugged: refuse new connections and drop existing ones (RTSP, HTTP, discovery silent).
    stalled:   RTSP sessions stay open but no media is sent (a hung encoder).
    soap_delay: seconds added before every ONVIF answer (a slow or overloaded camera).
    drop_after_frames: RTSP connections are cut once a session has sent this many frames
               (a camera that breaks off streams: rebooting, a flaky link); 0 is off.
    """

    unplugged: bool = False
    stalled: bool = False
    soap_delay: float = 0.0
    drop_after_frames: int = 0
    # Bumped on every unplug so servers can find and close connections opened before it.
    generation: int = field(default=0)

    def unplug(self) -> None:
        self.unplugged = True
        self.generation += 1

    def replug(self) -> None:
        self.unplugged = False

    def stall(self) -> None:
        self.stalled = True

    def unstall(self) -> None:
        self.stalled = False
