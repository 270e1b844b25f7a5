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
- live minutes and bytes uploaded, from live-session and upload entries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from agent.ledger.chain import Entry, Kind

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


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


def _number(data: dict[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return 0.0


def build_report(
    entries: Iterable[Entry], *, since: datetime | None = None, until: datetime | None = None
) -> TransparencyReport:
    report = TransparencyReport(since=since, until=until)

    def tallies(data: dict[str, Any]) -> list[Tally]:
        out = [report.total]
        verified = data.get("verified", True) is True
        agency = _text(data, "issuer") if verified else None
        out.append(report.by_agency.setdefault(agency or UNVERIFIED, Tally()))
        camera = _text(data, "camera") if verified else None
        if camera is not None:
            out.append(report.by_camera.setdefault(camera, Tally()))
        return out

    for entry in entries:
        moment = entry.moment
        if (since is not None and moment < since) or (until is not None and moment > until):
            continue
        data = entry.data
        if entry.kind == Kind.UNPARSEABLE:
            report.unparseable += 1
            continue
        for tally in tallies(data) if entry.kind in _COUNTED else ():
            _count(entry.kind, data, tally)
        code = _text(data, "code")
        if code and (
            (entry.kind == Kind.REQUEST_RECEIVED)
            or (entry.kind == Kind.DECISION and data.get("outcome") == "rejected")
        ):
            report.rejected_by_code[code] += 1
    return report


_COUNTED = frozenset(
    {
        Kind.REQUEST_RECEIVED,
        Kind.DECISION,
        Kind.APPROVAL,
        Kind.DENIAL,
        Kind.REQUEST_CLOSED,
        Kind.UPLOAD,
        Kind.LIVE_SESSION,
    }
)


def _count(kind: str, data: dict[str, Any], tally: Tally) -> None:
    if kind == Kind.REQUEST_RECEIVED:
        tally.received += 1
        if data.get("code"):
            tally.rejected += 1
    elif kind == Kind.DECISION:
        outcome = data.get("outcome")
        if outcome == "rejected":
            tally.rejected += 1
        elif outcome == "accepted" and data.get("cmd") in FOOTAGE_COMMANDS:
            tally.automatic += 1
    elif kind == Kind.APPROVAL:
        tally.approved += 1
    elif kind == Kind.DENIAL:
        tally.denied += 1
    elif kind == Kind.REQUEST_CLOSED:
        if data.get("code") == "approval_expired":
            tally.expired += 1
    elif kind == Kind.UPLOAD:
        tally.bytes_uploaded += int(_number(data, "bytes"))
    elif kind == Kind.LIVE_SESSION:
        tally.live_seconds += _number(data, "seconds")
