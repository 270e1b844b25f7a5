"""Why a delivery ended without `completed`: a wire failure code and a sentence for the RTCC."""

from __future__ import annotations

from agent.wire import RejectCode


class DeliveryFailed(Exception):
    """The request ends `failed` with `code` and `message` (sent to the RTCC as they are)."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
