"""Holds: windows of a camera's footage that retention must keep, placed and released by id.

The link places one per clip request (its `jti` as the id), also while the request waits for the
owner's approval, and releases it when the request ends. Extraction places a short-lived one of
its own so that retention cannot delete a segment it is copying.
"""

from __future__ import annotations

from datetime import datetime

from agent.log import get_logger
from agent.store.errors import InvalidWindow
from agent.store.index import HoldRow, Index, now_us
from agent.store.layout import check_camera_id
from agent.store.model import Hold, from_us, to_us

log = get_logger(__name__)

MAX_HOLD_ID = 200


def window_us(start: datetime, end: datetime) -> tuple[int, int]:
    """A [start, end) window in µs; InvalidWindow if naive, empty or reversed."""
    try:
        start_us, end_us = to_us(start), to_us(end)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidWindow(str(exc)) from exc
    if end_us <= start_us:
        raise InvalidWindow(
            f"window ends ({end.isoformat()}) before it starts ({start.isoformat()})"
        )
    return start_us, end_us


def _check_id(hold_id: str) -> str:
    if not isinstance(hold_id, str) or not 0 < len(hold_id) <= MAX_HOLD_ID:
        raise ValueError(f"a hold id is 1 to {MAX_HOLD_ID} characters")
    if not hold_id.isprintable():
        raise ValueError("a hold id must be printable text")
    return hold_id


def place_hold(
    index: Index,
    hold_id: str,
    camera: str,
    start: datetime,
    end: datetime,
    *,
    reason: str = "",
    quiet: bool = False,
) -> None:
    """Keep [start, end) of `camera`. Placing the same id again replaces its window and reason
    (so a retry is harmless)."""
    _check_id(hold_id)
    check_camera_id(camera)
    start_us, end_us = window_us(start, end)
    with index.transaction() as db:
        db.execute(
            "INSERT INTO holds (id, camera, start_us, end_us, reason, created_us) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET camera = excluded.camera, "
            "start_us = excluded.start_us, end_us = excluded.end_us, reason = excluded.reason",
            (hold_id, camera, start_us, end_us, reason[:1000], now_us()),
        )
    if not quiet:
        log.info("hold_placed", hold=hold_id, camera=camera, start_us=start_us, end_us=end_us)


def release_hold(index: Index, hold_id: str, *, quiet: bool = False) -> bool:
    """Drop a hold; True if it existed."""
    with index.transaction() as db:
        removed = db.execute("DELETE FROM holds WHERE id = ?", (hold_id,)).rowcount
    if removed and not quiet:
        log.info("hold_released", hold=hold_id)
    return bool(removed)


def to_hold(row: HoldRow) -> Hold:
    return Hold(
        row.id,
        row.camera,
        from_us(row.start_us),
        from_us(row.end_us),
        row.reason,
        from_us(row.created_us),
    )
