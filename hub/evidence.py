"""The evidence locker: every clip and snapshot a site delivered, verified on arrival, with its
chain of custody.

- `receive` runs when a request's `completed` event arrives (in the hub process that stored that
  event first): the file the site uploaded to this hub's receiver is registered for the request's
  case and verified against the signed manifest the event carries (`hub.verify`: signature,
  SHA-256, size, media, window, gaps, the window that was asked for).
- `verify` runs the same checks again on demand (an analyst, a court date).
- `bundle` writes one ZIP for a download: the file, its manifest, the verification report
  (JSON and text) and the custody record, and records who took it.

Every step is a custody entry: who (an analyst, or `hub` for what the hub did by itself), when,
what, and the outcome.
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from agent.fsutil import atomic_write
from agent.wire import EventState
from hub.core import Hub
from hub.csvout import to_csv
from hub.db import Custody, EventRow, Evidence, RequestRow
from hub.db.ops import insert_ignore
from hub.events import SETTLED
from hub.presign import CLIP_NAME, MANIFEST_NAME, SNAPSHOT_NAME, case_directory
from hub.verify import Verification, verify_files

HUB_ACTOR = "hub"


class EvidenceError(Exception):
    """The evidence asked for does not exist or its file is not on this hub."""


@dataclass(frozen=True)
class EvidenceItem:
    evidence: Evidence
    request: RequestRow
    custody: list[Custody]


def _stored_path(hub: Hub, request: RequestRow) -> Path | None:
    """Where this hub's receiver put the request's file, if the request was minted here."""
    if request.case is None:
        return None
    name = CLIP_NAME if request.cmd == "clip" else SNAPSHOT_NAME
    try:
        return case_directory(hub.home, request.case, request.id) / name
    except ValueError:
        return None


def _relative(hub: Hub, path: Path) -> str:
    try:
        return str(path.relative_to(hub.home.root))
    except ValueError:
        return str(path)


def evidence_path(hub: Hub, evidence: Evidence) -> Path | None:
    if evidence.path is None:
        return None
    path = Path(evidence.path)
    return path if path.is_absolute() else hub.home.root / path


@dataclass(frozen=True)
class Received:
    evidence_id: int
    verification: Verification


async def receive(hub: Hub, request: RequestRow, manifest: str) -> Received | None:
    """Register and verify what a `completed` clip or snapshot request delivered. None when the
    request is not one (or its evidence is already registered)."""
    if request.cmd not in ("clip", "snapshot"):
        return None
    path = _stored_path(hub, request)
    exists = path is not None and await asyncio.to_thread(path.is_file)
    async with hub.db.session() as session:
        created = await insert_ignore(
            session,
            Evidence,
            {
                "request_id": request.id,
                "case": request.case or "",
                "site_id": request.site_id,
                "camera_id": request.camera_id or "",
                "kind": request.cmd,
                "path": _relative(hub, path) if exists and path is not None else None,
                "manifest": manifest,
                "received": datetime.now(UTC),
            },
        )
        if not created:
            return None
        evidence = (
            await session.execute(select(Evidence).where(Evidence.request_id == request.id))
        ).scalar_one()
        detail = (
            f"{path.name} from site {request.site_id}, camera {request.camera_id}"
            if exists and path is not None
            else "the site reports it delivered, but the file is not on this hub (uploaded "
            "elsewhere)"
        )
        session.add(
            Custody(evidence_id=evidence.id, actor=HUB_ACTOR, action="received", detail=detail)
        )
    if exists and path is not None:
        # Kept beside the clip too, so the case directory can be checked offline.
        manifest_file = path.with_name(MANIFEST_NAME)
        if not await asyncio.to_thread(manifest_file.exists):
            await asyncio.to_thread(atomic_write, manifest_file, manifest + "\n", mode=0o640)
    result = await verify(hub, evidence.id, actor=HUB_ACTOR)
    hub.bus.publish(f"case:{request.case}", f"request:{request.id}", "evidence")
    return Received(evidence.id, result)


async def verify(hub: Hub, evidence_id: int, *, actor: str) -> Verification:
    """Run every check on the stored file and manifest; record the result and who asked."""
    async with hub.db.session() as session:
        evidence = await session.get(Evidence, evidence_id)
        if evidence is None:
            raise EvidenceError(f"no evidence {evidence_id}")
        request = await session.get(RequestRow, evidence.request_id)
    assert request is not None
    path = evidence_path(hub, evidence)
    window = None
    if request.cmd == "clip" and request.start is not None and request.end is not None:
        window = (request.start, request.end)
    trusted = dict(hub.trusted())
    if path is None:
        result = Verification()
        result.add("file", "fail", "the file is not on this hub, so it cannot be checked here")
    else:
        result = await asyncio.to_thread(
            verify_files, path, evidence.manifest, trusted=trusted, expect_window=window
        )
    report = result.to_json()
    file_info = result.manifest.file if result.manifest else None
    now = datetime.now(UTC)
    async with hub.db.session() as session:
        stored = await session.get(Evidence, evidence_id, with_for_update=True)
        assert stored is not None
        stored.verified_ok, stored.verified_at, stored.verification = result.ok, now, report
        if file_info is not None:
            stored.sha256, stored.bytes = file_info.sha256, file_info.bytes
        if result.manifest is not None and result.manifest.kind == "clip":
            stored.window_start = result.manifest.actual.start.astimezone(UTC)
            stored.window_end = result.manifest.actual.end.astimezone(UTC)
        session.add(
            Custody(
                evidence_id=evidence_id,
                actor=actor,
                action="verified" if actor == HUB_ACTOR else "re-verified",
                detail=summary(result),
                at=now,
            )
        )
    hub.bus.publish(f"case:{evidence.case}", f"request:{evidence.request_id}", "evidence")
    return result


def summary(result: Verification) -> str:
    """One line: verified, or which checks failed."""
    failed = [f"{c.name}: {c.detail}" for c in result.checks if c.status == "fail"]
    warned = [c.name for c in result.checks if c.status == "warn"]
    if failed:
        return "NOT verified — " + "; ".join(failed)
    text = "verified: signature, SHA-256, size, media and window all check out"
    if warned:
        text += f" ({len(warned)} warning{'s' if len(warned) > 1 else ''}: {', '.join(warned)})"
    return text


async def case_items(hub: Hub, case: str) -> list[EvidenceItem]:
    async with hub.db.session() as session:
        rows = (
            await session.execute(
                select(Evidence, RequestRow)
                .join(RequestRow, RequestRow.id == Evidence.request_id)
                .where(Evidence.case == case)
                .order_by(Evidence.received)
            )
        ).all()
        custody = (
            (
                await session.execute(
                    select(Custody)
                    .where(Custody.evidence_id.in_([e.id for e, _ in rows]))
                    .order_by(Custody.at, Custody.id)
                )
            )
            .scalars()
            .all()
        )
    by_item: dict[int, list[Custody]] = {}
    for entry in custody:
        by_item.setdefault(entry.evidence_id, []).append(entry)
    return [EvidenceItem(e, r, by_item.get(e.id, [])) for e, r in rows]


async def item(hub: Hub, evidence_id: int) -> EvidenceItem:
    async with hub.db.session() as session:
        evidence = await session.get(Evidence, evidence_id)
        if evidence is None:
            raise EvidenceError(f"there is no evidence {evidence_id}")
        request = await session.get(RequestRow, evidence.request_id)
        custody = (
            (
                await session.execute(
                    select(Custody)
                    .where(Custody.evidence_id == evidence_id)
                    .order_by(Custody.at, Custody.id)
                )
            )
            .scalars()
            .all()
        )
    assert request is not None
    return EvidenceItem(evidence, request, list(custody))


@dataclass(frozen=True)
class CaseSummary:
    case: str
    items: int
    verified: int
    failed: int
    waiting: int  # requests of the case not delivered yet
    last: datetime | None


async def cases(hub: Hub) -> list[CaseSummary]:
    """Every case with requests, newest activity first."""
    async with hub.db.session() as session:
        requests = (
            (
                await session.execute(
                    select(RequestRow).where(
                        RequestRow.case.is_not(None), RequestRow.cmd.in_(("clip", "snapshot"))
                    )
                )
            )
            .scalars()
            .all()
        )
        evidence = (await session.execute(select(Evidence))).scalars().all()
    delivered = {e.request_id: e for e in evidence}
    summaries: dict[str, dict[str, Any]] = {}
    for request in requests:
        assert request.case is not None
        entry = summaries.setdefault(
            request.case, {"items": 0, "verified": 0, "failed": 0, "waiting": 0, "last": None}
        )
        found = delivered.get(request.id)
        moment = found.received if found else request.updated
        entry["last"] = max(filter(None, (entry["last"], moment)))
        if found is not None:
            entry["items"] += 1
            entry["verified"] += found.verified_ok is True
            entry["failed"] += found.verified_ok is False
        elif request.state not in SETTLED:
            entry["waiting"] += 1
    ordered = sorted(summaries.items(), key=lambda kv: kv[1]["last"], reverse=True)
    return [CaseSummary(case, **values) for case, values in ordered]


def custody_csv(entries: Sequence[Custody]) -> str:
    return to_csv(
        ("time (UTC)", "who", "action", "detail"),
        ((entry.at.isoformat(), entry.actor, entry.action, entry.detail) for entry in entries),
    )


def verification_text(report: dict[str, Any] | None) -> str:
    if not report:
        return "not verified yet\n"
    lines = [f"{'VERIFIED' if report.get('ok') else 'NOT VERIFIED'}"]
    for key in ("site", "request", "case", "camera", "kind"):
        lines.append(f"{key}: {report.get(key)}")
    for key in ("requested", "actual"):
        window = report.get(key)
        if window:
            lines.append(f"{key} window: {window['start']} to {window['end']}")
    for gap in report.get("gaps") or []:
        lines.append(f"gap: {gap['start']} to {gap['end']}")
    lines.append("")
    for check in report.get("checks", []):
        lines.append(f"[{check['status']:>4}] {check['check']}: {check['detail']}")
    return "\n".join(lines) + "\n"


async def bundle(hub: Hub, evidence_id: int, *, analyst: str, target: Path) -> Path:
    """Write the download bundle of one piece of evidence to `target` (a .zip) and record
    the download in its chain of custody. EvidenceError if its file is not on this hub."""
    found = await item(hub, evidence_id)
    path = evidence_path(hub, found.evidence)
    if path is None or not await asyncio.to_thread(path.is_file):
        raise EvidenceError("the file of this evidence is not on this hub")
    download = {
        "evidence_id": evidence_id,
        "actor": analyst,
        "action": "downloaded",
        "detail": f"bundle {target.name}",
        "at": datetime.now(UTC),
    }
    async with hub.db.session() as session:
        session.add(Custody(**download))
    # The bundle's own custody record ends with this download.
    custody = [*found.custody, Custody(**download)]
    await asyncio.to_thread(_write_bundle, target, path, found, custody)
    hub.bus.publish(f"case:{found.evidence.case}")
    return target


def _write_bundle(target: Path, path: Path, found: EvidenceItem, custody: list[Custody]) -> None:
    report = found.evidence.verification
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.write(path, path.name)
        archive.writestr(MANIFEST_NAME, found.evidence.manifest + "\n")
        archive.writestr("verification.json", json.dumps(report, indent=2) + "\n")
        archive.writestr("verification.txt", verification_text(report))
        archive.writestr("custody.csv", custody_csv(custody))
        archive.writestr(
            "README.txt",
            f"Evidence for case {found.evidence.case}: {path.name} from camera "
            f"{found.evidence.camera_id} at site {found.evidence.site_id}, request "
            f"{found.evidence.request_id}.\n{MANIFEST_NAME} is the manifest the site signed; "
            f"check the file against it offline with:\n  rtcc-hub verify {path.name} "
            f"{MANIFEST_NAME}\n",
        )


async def register_missing(hub: Hub) -> int:
    """Register the evidence of completed clip/snapshot requests that have none (the hub
    stopped between storing the `completed` event and registering it). Returns how many."""
    async with hub.db.session() as session:
        rows = (
            await session.execute(
                select(RequestRow, EventRow.claims)
                .join(EventRow, EventRow.request_id == RequestRow.id)
                .outerjoin(Evidence, Evidence.request_id == RequestRow.id)
                .where(
                    RequestRow.state == EventState.COMPLETED.value,
                    RequestRow.cmd.in_(("clip", "snapshot")),
                    EventRow.state == EventState.COMPLETED.value,
                    Evidence.id.is_(None),
                )
            )
        ).all()
    count = 0
    for request, claims in rows:
        manifest = claims.get("manifest") if isinstance(claims, dict) else None
        if isinstance(manifest, str) and await receive(hub, request, manifest) is not None:
            count += 1
    return count
