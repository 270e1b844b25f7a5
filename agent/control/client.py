"""The owner CLI's side of the control socket (blocking; one short exchange per command)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from agent.control.protocol import MAX_LINE, VERSION, encode_request

# Pictures and preview pieces come back base64-encoded on one line.
RESPONSE_LIMIT = 64 * MAX_LINE


class DaemonNotRunning(Exception):
    """Nothing listens on the control socket."""


class ControlError(Exception):
    """The daemon refused the command (or could not be reached for another reason)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ControlClient:
    def __init__(self, path: Path, *, timeout: float = 15.0) -> None:
        self.path = path
        self.timeout = timeout

    def call(self, cmd: str, **args: Any) -> Any:
        """Send one command; its result, or DaemonNotRunning / ControlError."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise DaemonNotRunning(
                    f"The rtcc-edge daemon is not running (nothing listens on {self.path})."
                ) from exc
            except PermissionError as exc:
                raise ControlError(
                    "permission_denied",
                    f"Permission denied on {self.path}: run as root or as a member of the "
                    "rtcc-edge group.",
                ) from exc
            sock.sendall(encode_request(cmd, args))
            line = self._read_line(sock)
        except TimeoutError as exc:
            raise ControlError("timeout", "The daemon did not answer in time.") from exc
        except OSError as exc:
            raise ControlError("io", f"Lost the connection to the daemon: {exc}") from exc
        finally:
            sock.close()
        return decode_response(line)

    @staticmethod
    def _read_line(sock: socket.socket) -> bytes:
        data = bytearray()
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > RESPONSE_LIMIT:
                raise ControlError("bad_response", "The daemon's answer is too long.")
        return bytes(data)


def decode_response(line: bytes) -> Any:
    """The result of one response line, or ControlError (the daemon's refusal, or an answer
    that is not understood)."""
    try:
        response = json.loads(line)
        if response.get("v") != VERSION:
            raise ControlError("unsupported_version", "The daemon speaks another version.")
        if response.get("ok") is True:
            return response.get("result")
        error = response["error"]
        raise ControlError(str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ControlError("bad_response", "The daemon's answer is not understood.") from exc
