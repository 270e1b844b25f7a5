from __future__ import annotations

import ctypes
import platform

import pytest

from agent.clock import _Timex, clock_sync


@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="64-bit Linux ABI")
def test_timex_matches_the_kernel_abi() -> None:
    # sizeof(struct timex) is 208 bytes on 64-bit Linux; a wrong layout would read garbage.
    assert ctypes.sizeof(_Timex) == 208


def test_reports_the_kernel_view_on_linux() -> None:
    sync = clock_sync()
    # adjtimex with modes = 0 needs no privilege: on Linux the kernel always answers.
    assert sync.source == "adjtimex"
    assert sync.synchronized in (True, False)
    assert sync.max_error_us is not None and sync.max_error_us >= 0
