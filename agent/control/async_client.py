"""The control socket from asyncio code (the owner's page): the same exchange as
`agent.control.client.ControlClient`, one connection per command, without blocking the loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent.control.client import RESPONSE_LIMIT, ControlError, DaemonNotRunning, decode_response
from agent.control.protocol import encode_request


class AsyncControlClient:
    def __init__(self, path: Path, *, timeout: float = 15.0) -> None:
        self.path = path
        self.timeout = timeout

    async def call(self, cmd: str, **args: Any) -> Any:
        """Send one command; its result, or DaemonNotRunning / ControlError."""
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    reader, writer = await asyncio.open_unix_connection(
                        str(self.path), limit=RESPONSE_LIMIT
                    )
                except (FileNotFoundError, ConnectionRefusedError) as exc:
                    raise DaemonNotRunning(
                        f"The rtcc-edge daemon is not running (nothing listens on {self.path})."
                    ) from exc
                except PermissionError as exc:
                    raise ControlError(
                        "permission_denied",
                        f"Permission denied on {self.path}: the page's user must be a member "
                        "of the rtcc-edge group.",
                    ) from exc
                try:
                    writer.write(encode_request(cmd, args))
                    await writer.drain()
                    line = await reader.readline()
                finally:
                    writer.close()
        except TimeoutError as exc:
            raise ControlError("timeout", "The daemon did not answer in time.") from exc
        except (ValueError, asyncio.LimitOverrunError) as exc:
            raise ControlError("bad_response", "The daemon's answer is too long.") from exc
        except OSError as exc:
            raise ControlError("io", f"Lost the connection to the daemon: {exc}") from exc
        return decode_response(line)
