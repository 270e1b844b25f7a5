"""What can go wrong talking to a camera, each with a message a technician can act on.

Every failure of the ONVIF layer (a closed port, a camera that never answers, a web server that is
not ONVIF, an answer that does not parse, refused credentials, a SOAP fault) is one of these; no
library exception or traceback escapes `agent.onvif`. `kind` is the stable machine-readable name
that reports and verdicts use.
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorKind = Literal["unreachable", "timeout", "not_onvif", "malformed", "auth", "fault"]

# Camera text quoted in a message is cut to this length (answers can be huge or hostile).
MAX_QUOTED = 200


def quoted(text: object, limit: int = MAX_QUOTED) -> str:
    """`text` made safe to show: printable characters only, at most `limit` of them."""
    cleaned = "".join(c if c.isprintable() else " " for c in str(text))
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


class OnvifError(Exception):
    """A camera could not be used over ONVIF; `str(error)` says why in plain words."""

    kind: ClassVar[ErrorKind]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Unreachable(OnvifError):
    """Nothing accepts a connection there (refused, no route, unknown host)."""

    kind = "unreachable"


class NoAnswer(OnvifError):
    """The connection was accepted (or hangs) but no answer came in time."""

    kind = "timeout"


class NotOnvif(OnvifError):
    """Something answers HTTP there, but not as an ONVIF device service."""

    kind = "not_onvif"


class MalformedAnswer(OnvifError):
    """The camera answered with SOAP/XML that cannot be understood."""

    kind = "malformed"


class AuthFailed(OnvifError):
    """The camera refused the credentials with every authentication method tried."""

    kind = "auth"


class OnvifFault(OnvifError):
    """The camera answered an operation with a SOAP fault."""

    kind = "fault"

    def __init__(self, operation: str, reason: str, *, subcodes: tuple[str, ...] = ()) -> None:
        self.operation = operation
        self.reason = quoted(reason)
        self.subcodes = subcodes
        detail = f" ({', '.join(subcodes)})" if subcodes else ""
        super().__init__(f"the camera refused {operation}: {self.reason or 'no reason'}{detail}")

    @property
    def not_supported(self) -> bool:
        """The camera says it does not implement the operation."""
        return bool({"ActionNotSupported", "NoSuchService"} & set(self.subcodes)) or (
            "not implemented" in self.reason.lower() or "not supported" in self.reason.lower()
        )
