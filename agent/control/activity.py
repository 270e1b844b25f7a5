"""What the owner's Activity page shows, read by the daemon (the page's user cannot read the
state directory) and given over the control socket (`activity`, and the bytes in `requests`):
the ledger's verification (as `audit verify`), the transparency report (the same
`build_report` as `audit report`), and the bytes each request sent.

These read the files under `<state_dir>/ledger` as the audit commands do, and block while they
do: the control server calls them through `asyncio.to_thread`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.identity import DeviceKey, DeviceKeyError, device_key_path
from agent.ledger import LedgerFormatError, TransparencyReport, build_report, read_entries
from agent.ledger.entries import Upload, parse_entry_data
from agent.ledger.verify import verify_ledger

LEDGER_DIR = "ledger"


def check_ledger(state_dir: Path) -> dict[str, Any]:
    """The ledger checked against the device key and the keys a rotation retired:
    `{"ok": bool, "words": one sentence for the owner}`."""
    key_path = device_key_path(state_dir)
    try:
        ring = [DeviceKey.load(key_path).public_jwk]
        ring += [
            DeviceKey.load(path).public_jwk
            for path in sorted(state_dir.glob(f"{key_path.name}.retired-*"))
        ]
    except DeviceKeyError as exc:
        return {
            "ok": False,
            "words": f"The record cannot be checked without the device key: {exc}",
        }
    result = verify_ledger(state_dir / LEDGER_DIR, ring)
    if result.ok:
        return {
            "ok": True,
            "words": f"The record of every request is intact: {result.entries} entries, "
            "none changed or removed.",
        }
    return {
        "ok": False,
        "words": f"The record has a problem ({result.first}). "
        "Run `sudo rtcc-edge audit verify` for details.",
    }


def report(state_dir: Path) -> TransparencyReport:
    """All time, as `rtcc-edge audit report`; LedgerFormatError if a line is not an entry."""
    return build_report(read_entries(state_dir / LEDGER_DIR), until=datetime.now(UTC))


def activity(state_dir: Path) -> dict[str, Any]:
    """The `activity` command's answer: `check`, and `report` (`TransparencyReport.to_json`,
    the figures of `audit report --json`) or, if the ledger cannot be read, `report_error`."""
    answer: dict[str, Any] = {"check": check_ledger(state_dir), "report": None}
    try:
        answer["report"] = report(state_dir).to_json()
    except (LedgerFormatError, OSError) as exc:
        answer["report_error"] = f"The record cannot be read: {exc}"
    return answer


def bytes_by_request(state_dir: Path, requests: Collection[str]) -> dict[str, int]:
    """Bytes that left the site for each of `requests` (every upload attempt counted)."""
    sent: dict[str, int] = {}
    try:
        for entry in read_entries(state_dir / LEDGER_DIR):
            record = parse_entry_data(entry)
            if isinstance(record, Upload) and record.jti in requests:
                sent[record.jti] = sent.get(record.jti, 0) + record.bytes
    except (LedgerFormatError, OSError):
        pass  # the history shows no bytes; the Activity page says what is wrong
    return sent
