"""Is this machine's clock synchronised? (status messages, clip manifests, `doctor`)

Evidence timestamps are only as good as the clock that made them, so the agent reports what it
knows, and says "unknown" rather than guessing. The kernel's own view comes first: `adjtimex`
(read-only, modes = 0) reports whether an NTP daemon (systemd-timesyncd, chrony, ntpd) keeps the
clock disciplined, with no privileges needed. `timedatectl` is the fallback where a seccomp
filter denies that call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
from dataclasses import dataclass

_TIME_ERROR = 5
_STA_UNSYNC = 0x0040


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (Linux, 64-bit and 32-bit: longs follow the ABI).
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@dataclass(frozen=True)
class ClockSync:
    synchronized: bool | None
    source: str
    max_error_us: int | None = None

    @property
    def known(self) -> bool:
        return self.synchronized is not None


def _from_adjtimex() -> ClockSync | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    synced = state != _TIME_ERROR and not timex.status & _STA_UNSYNC
    return ClockSync(synced, "adjtimex", max_error_us=int(timex.maxerror))


def _from_timedatectl() -> ClockSync | None:
    exe = shutil.which("timedatectl")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = proc.stdout.strip()
    if proc.returncode != 0 or value not in ("yes", "no"):
        return None
    return ClockSync(value == "yes", "timedatectl")


def clock_sync() -> ClockSync:
    """What the system says about NTP synchronisation; `synchronized` None when nothing says."""
    return _from_adjtimex() or _from_timedatectl() or ClockSync(None, "unknown")
