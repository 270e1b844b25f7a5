"""Event states and the exact reject/failure codes of DESIGN §4.3."""

from enum import StrEnum


class EventState(StrEnum):
    ACCEPTED = "accepted"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    PROGRESS = "progress"
    COMPLETED = "completed"
    STREAMING = "streaming"
    ENDED = "ended"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A request gets exactly one of these, and nothing after it.
FINAL_STATES = frozenset(
    {
        EventState.REJECTED,
        EventState.COMPLETED,
        EventState.ENDED,
        EventState.FAILED,
        EventState.CANCELLED,
    }
)


class RejectCode(StrEnum):
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    BAD_ALGORITHM = "bad_algorithm"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    LIFETIME_TOO_LONG = "lifetime_too_long"
    REPLAYED = "replayed"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_ISSUER = "wrong_issuer"
    MALFORMED = "malformed"
    UNKNOWN_COMMAND = "unknown_command"
    UNKNOWN_CAMERA = "unknown_camera"
    NOT_SHARED = "not_shared"
    LIVE_NOT_ALLOWED = "live_not_allowed"
    WINDOW_TOO_LONG = "window_too_long"
    WINDOW_IN_FUTURE = "window_in_future"
    OUT_OF_RETENTION = "out_of_retention"
    UPLOAD_NOT_ALLOWED = "upload_not_allowed"
    DENIED_BY_OWNER = "denied_by_owner"
    APPROVAL_EXPIRED = "approval_expired"
    RATE_LIMITED = "rate_limited"
    PAUSED = "paused"
    BUSY = "busy"
    CAMERA_OFFLINE = "camera_offline"
    UPLOAD_FAILED = "upload_failed"
    INTERNAL = "internal"
