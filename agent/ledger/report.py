"""The owner's transparency report, computed from ledger entries.

Counted per agency (the verified `iss` of a request; requests whose signature did not verify
are counted under `(unverified)` and never attributed to a camera, since their claims are not
trustworthy) and per camera:

- received: every request payload that was at least a JWT (unreadable payloads are counted
  apart as `unparseable`);
- automatic: footage requests (clip, snapshot, stream) accepted without the owner, i.e. on
  integrated cameras;
- approved / denied: the owner's answers to pending requests; expired: pending requests nobody
  answered in time;
- rejected: refused by verification or by the sharing policy (also broken down by code);
- live minutes and bytes uploaded, from live-session and upload entries (`bytes`: what actually
  left the site, so a transfer cut short counts what went out).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from agent.ledger.chain import Entry
from agent.ledger.entries import (
    Approval,
    Decision,
    Denial,
    LedgerEntry,
    LiveSession,
    RequestClosed,
    RequestReceived,
    Unparseable,
    Upload,
    parse_entry_data,
)

UNVERIFIED = "(unverified)"
FOOTAGE_COMMANDS = frozenset({"clip", "snapshot", "stream"})


@dataclass
class Tally:
    received: int = 0
    automatic: int = 0
    approved: int = 0
    denied: int = 0
    expired: int = 0
    rejected: int = 0
    live_seconds: float = 0.0
    bytes_uploaded: int = 0

    @property
    def live_minutes(self) -> float:
        return self.live_seconds / 60


@dataclass
class TransparencyReport:
    since: datetime | None
    until: datetime | None
    total: Tally = field(default_factory=Tally)
    unparseable: int = 0
    rejected_by_code: Counter[str] = field(default_factory=Counter)
    by_agency: dict[str, Tally] = field(default_factory=dict)
    by_camera: dict[str, Tally] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def tally(t: Tally) -> dict[str, Any]:
            return {**asdict(t), "live_minutes": round(t.live_minutes, 2)}

        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "total": tally(self.total),
            "unparseable": self.unparseable,
            "rejected_by_code": dict(sorted(self.rejected_by_code.items())),
            "by_agency": {k: tally(v) for k, v in sorted(self.by_agency.items())},
            "by_camera": {k: tally(v) for k, v in sorted(self.by_camera.items())},
        }


def build_report(
    entries: Iterable[Entry], *, since: datetime | None = None, until: datetime | None = None
) -> TransparencyReport:
    """Sum the typed entries (`agent.ledger.entries`); an entry whose data does not fit its
    kind's model (hand-edited, foreign) is not counted: `audit verify` reports those."""
    report = TransparencyReport(since=since, until=until)

    def tallies(record: LedgerEntry) -> list[Tally]:
        out = [report.total]
        verified = not isinstance(record, RequestReceived) or record.verified
        issuer = getattr(record, "issuer", None)
        agency = issuer if verified and issuer else None
        out.append(report.by_agency.setdefault(agency or UNVERIFIED, Tally()))
        camera = getattr(record, "camera", None) if verified else None
        if camera:
            out.append(report.by_camera.setdefault(camera, Tally()))
        return out

    for entry in entries:
        moment = entry.moment
        if (since is not None and moment < since) or (until is not None and moment > until):
            continue
        record = parse_entry_data(entry)
        if record is None:
            continue
        if isinstance(record, Unparseable):
            report.unparseable += 1
            continue
        if not isinstance(record, _COUNTED):
            continue
        for tally in tallies(record):
            _count(record, tally)
        if (isinstance(record, RequestReceived) and record.code) or (
            isinstance(record, Decision) and record.outcome == "rejected" and record.code
        ):
            report.rejected_by_code[record.code] += 1
    return report


_COUNTED = (RequestReceived, Decision, Approval, Denial, RequestClosed, Upload, LiveSession)


def _count(record: LedgerEntry, tally: Tally) -> None:
    if isinstance(record, RequestReceived):
        tally.received += 1
        if record.code:
            tally.rejected += 1
    elif isinstance(record, Decision):
        if record.outcome == "rejected":
            tally.rejected += 1
        elif record.outcome == "accepted" and record.cmd in FOOTAGE_COMMANDS:
            tally.automatic += 1
    elif isinstance(record, Approval):
        tally.approved += 1
    elif isinstance(record, Denial):
        tally.denied += 1
    elif isinstance(record, RequestClosed):
        if record.code == "approval_expired":
            tally.expired += 1
    elif isinstance(record, Upload):
        tally.bytes_uploaded += record.bytes
    elif isinstance(record, LiveSession):
        tally.live_seconds += record.seconds
