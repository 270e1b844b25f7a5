"""A stand-in for systemd's side of the notify protocol: a real datagram socket that collects
what a service sends on `$NOTIFY_SOCKET`, and `mdwe_prefix()`, the command prefix that runs a
program under the kernel's memory-deny-write-execute (what `MemoryDenyWriteExecute=yes` does)."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path


class NotifyListener:
    """Bind a datagram socket; `messages` gets each datagram, split into its assignments."""

    def __init__(self, directory: Path | None = None) -> None:
        # A short path: AF_UNIX addresses are limited to 108 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="notify-", dir=directory or "/tmp"))
        self.path = self._dir / "notify.sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        self._sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def with_key(self, key: str) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(t, m) for t, m in self.messages if key in m]

    def wait_for(self, predicate: Callable[[], bool], *, within: float = 60.0) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        self.path.unlink(missing_ok=True)
        self._dir.rmdir()


MDWE_WRAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(f"PR_SET_MDWE failed: errno {ctypes.get_errno()}")
os.execv(sys.argv[1], sys.argv[1:])
"""


def mdwe_supported() -> bool:
    """PR_SET_MDWE exists from Linux 6.3 (try it in a throw-away child)."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", MDWE_WRAPPER, "/bin/true"], capture_output=True, timeout=30
    )
    return result.returncode == 0


def mdwe_prefix(python: str) -> list[str]:
    """Prefix for a command line: sets PR_SET_MDWE, then execs the command (inherited by
    everything it starts). Like systemd's filter it refuses writable+executable mappings and
    making a mapping executable later."""
    return [python, "-c", MDWE_WRAPPER]
