"""Storing the events sites send, once, and moving the request they concern.

Events are stored idempotently by (request, seq): every hub process subscribed to the broker
receives every event, and a QoS 1 redelivery brings one again, but only the process whose
insert created the row acts on it (`Recorded.first`) — updates the request, runs the evidence
verification. On PostgreSQL a concurrent insert of the same (request, seq) waits for the other
transaction and then does nothing, so by the time a process learns it was second, the first
one's update of the request is committed and visible.

A request's row moves only forward: an event with a lower `seq` than the last one applied (a
late redelivery) is stored but changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from agent.wire import Event, EventState
from agent.wire.codes import FINAL_STATES
from hub.db import Database, EventRow, RequestRow
from hub.db.ops import insert_ignore
from hub.trust import Checked

# The states after which a request's row never moves again ("unsent": the hub could not send it).
SETTLED = frozenset({state.value for state in FINAL_STATES} | {"unsent"})


@dataclass(frozen=True)
class Recorded:
    event: Event
    first: bool  # this process stored it (and so acts on it)
    request: RequestRow | None  # the request after the update; None if the hub never sent it


async def record_event(
    db: Database, checked: Checked, token: str, *, received: datetime | None = None
) -> Recorded | None:
    """Store a verified event and apply it to its request. None for anything else (an event
    that did not verify is never stored as the site's word)."""
    event = checked.model
    if not checked.ok or not isinstance(event, Event) or checked.site is None:
        return None
    received = received or datetime.now(UTC)
    async with db.session() as session:
        first = await insert_ignore(
            session,
            EventRow,
            {
                "request_id": event.req,
                "seq": event.seq,
                "site_id": checked.site,
                "state": event.state.value,
                "iat": datetime.fromtimestamp(event.iat, UTC),
                "received": received,
                "claims": checked.claims or {},
                "token": token,
            },
        )
        request = await session.get(RequestRow, event.req, with_for_update=first)
        if request is not None and request.site_id != checked.site:
            request = None  # an id the hub gave another site: not this site's to move
        if first and request is not None:
            apply_event(request, event, received)
    return Recorded(event, first, request)


def apply_event(request: RequestRow, event: Event, received: datetime) -> None:
    if request.first_event is None:
        request.first_event = received
    if event.seq <= request.last_seq:
        return
    request.last_seq = event.seq
    request.updated = received
    if event.state is EventState.PROGRESS:
        request.bytes_sent, request.bytes_total = event.bytes_sent, event.bytes_total
        if request.state in ("sent", EventState.ACCEPTED.value, EventState.APPROVED.value):
            request.state = event.state.value
        return
    request.state = event.state.value
    if event.code is not None:
        request.code, request.message = event.code.value, event.message
    if event.started is not None:
        request.started = event.started.astimezone(UTC)
    if event.reason is not None:
        request.end_reason = event.reason[:64]
    if event.state is EventState.COMPLETED and request.bytes_total is not None:
        request.bytes_sent = request.bytes_total
