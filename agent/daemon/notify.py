"""systemd's notify protocol (sd_notify(3)) without libsystemd: datagrams on `$NOTIFY_SOCKET`.

The unit is `Type=notify` with `WatchdogSec=`: systemd waits for `READY=1` before it calls the
service started, shows `STATUS=` in `systemctl status`, and restarts the service when
`WATCHDOG=1` stops arriving for `WATCHDOG_USEC` microseconds. The daemon pings at half that
period (`watchdog_interval`), from its main loop, so a wedged event loop is what stops the
pings.

`from_environment()` removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment
(like sd_notify's `unset_environment`), so recorder processes and other children never speak
for the daemon. A failed send is logged, never raised: notification must not take the daemon
down.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

from agent.log import get_logger

log = get_logger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"
_MAX_STATUS = 200


def _address(value: str) -> str | None:
    if value.startswith("@"):
        return "\0" + value[1:]  # the abstract socket namespace
    if value.startswith("/"):
        return value
    return None  # vsock: and other transports are not used on these machines


def _watchdog_usec(environ: MutableMapping[str, str]) -> int | None:
    try:
        usec = int(environ.get(WATCHDOG_USEC, ""))
    except ValueError:
        return None
    pid = environ.get(WATCHDOG_PID)
    if pid is not None and pid != str(os.getpid()):
        return None  # the watchdog is meant for another process
    return usec if usec > 0 else None


class SystemdNotifier:
    """Sends sd_notify messages to one socket (implements `agent.daemon.ServiceNotifier`)."""

    def __init__(self, address: str, *, watchdog_usec: int | None = None) -> None:
        self._address = address
        self._watchdog_usec = watchdog_usec
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._socket.setblocking(False)
        self._failing = False

    @classmethod
    def from_environment(
        cls, environ: MutableMapping[str, str] | None = None
    ) -> SystemdNotifier | None:
        """The notifier systemd asked for, or None when not started by systemd with
        `Type=notify`. Takes the variables out of `environ` (default: os.environ)."""
        env = os.environ if environ is None else environ
        raw = env.get(NOTIFY_SOCKET)
        usec = _watchdog_usec(env)
        for name in (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID):
            env.pop(name, None)
        if not raw:
            return None
        address = _address(raw)
        if address is None:
            log.warning("notify_socket_unsupported", address=raw)
            return None
        return cls(address, watchdog_usec=usec)

    @property
    def watchdog_interval(self) -> float | None:
        """Half the watchdog period, in seconds (systemd's advice), or None without one."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def notify(self, *assignments: str) -> bool:
        """Send `VAR=value` lines in one datagram; False if it could not be sent."""
        message = "\n".join(assignments).encode("utf-8", "replace")
        try:
            self._socket.sendto(message, self._address)
        except OSError as exc:
            if not self._failing:  # once per outage, not once per ping
                log.warning("notify_failed", address=self._address, error=str(exc))
            self._failing = True
            return False
        if self._failing:
            log.info("notify_recovered", address=self._address)
        self._failing = False
        return True

    def ready(self) -> None:
        self.notify("READY=1", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        # One line: a newline in the text would start another assignment.
        clean = " ".join(text.split())[:_MAX_STATUS]
        self.notify(f"STATUS={clean}")

    def watchdog(self) -> None:
        if self._watchdog_usec is not None:
            self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")
