"""What the Activity page reads from the ledger files: their verification (as `audit verify`),
the transparency report (the same `build_report` as `audit report`), its CSV, and the bytes
each request sent (for the Requests page's history).

These read the files under `<state_dir>/ledger` as the audit commands do; each runs off the
event loop (`run_in_executor`), since a long ledger takes a while to read.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent.identity import DeviceKey, DeviceKeyError, device_key_path
from agent.ledger import LedgerFormatError, Tally, TransparencyReport, build_report, read_entries
from agent.ledger.entries import Upload, parse_entry_data
from agent.ledger.verify import verify_ledger

LEDGER_DIR = "ledger"
CSV_COLUMNS = (
    "group",
    "name",
    "received",
    "automatic",
    "approved",
    "denied",
    "expired",
    "rejected",
    "live_minutes",
    "bytes_uploaded",
)


@dataclass(frozen=True)
class LedgerCheck:
    ok: bool
    words: str  # one sentence for the owner


def check_ledger(state_dir: Path) -> LedgerCheck:
    """The ledger checked against the device key and the keys a rotation retired."""
    key_path = device_key_path(state_dir)
    try:
        ring = [DeviceKey.load(key_path).public_jwk]
        ring += [
            DeviceKey.load(path).public_jwk
            for path in sorted(state_dir.glob(f"{key_path.name}.retired-*"))
        ]
    except DeviceKeyError as exc:
        return LedgerCheck(False, f"The record cannot be checked without the device key: {exc}")
    result = verify_ledger(state_dir / LEDGER_DIR, ring)
    if result.ok:
        return LedgerCheck(
            True,
            f"The record of every request is intact: {result.entries} entries, "
            "none changed or removed.",
        )
    first = result.first
    return LedgerCheck(
        False,
        f"The record has a problem ({first}). Run `sudo rtcc-edge audit verify` for details.",
    )


def report(state_dir: Path) -> TransparencyReport:
    """All time, as `rtcc-edge audit report`; LedgerFormatError if a line is not an entry."""
    return build_report(read_entries(state_dir / LEDGER_DIR), until=datetime.now(UTC))


def report_csv(transparency: TransparencyReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)

    def row(group: str, name: str, tally: Tally) -> None:
        writer.writerow(
            [
                group,
                name,
                tally.received,
                tally.automatic,
                tally.approved,
                tally.denied,
                tally.expired,
                tally.rejected,
                f"{tally.live_minutes:.1f}",
                tally.bytes_uploaded,
            ]
        )

    for name, tally in sorted(transparency.by_agency.items()):
        row("agency", name, tally)
    for name, tally in sorted(transparency.by_camera.items()):
        row("camera", name, tally)
    row("all", "all", transparency.total)
    return out.getvalue()


def bytes_by_request(state_dir: Path) -> dict[str, int]:
    """Bytes that left the site per request id (every upload attempt counted)."""
    sent: dict[str, int] = {}
    try:
        for entry in read_entries(state_dir / LEDGER_DIR):
            record = parse_entry_data(entry)
            if isinstance(record, Upload):
                sent[record.jti] = sent.get(record.jti, 0) + record.bytes
    except (LedgerFormatError, OSError):
        pass  # the history shows no bytes; the Activity page says what is wrong
    return sent


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{count} bytes"
