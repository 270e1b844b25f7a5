"""The Activity page's figures as the owner reads them: the transparency report the daemon
sends (`activity` over the control socket: `TransparencyReport.to_json`, the figures of
`rtcc-edge audit report --json`) as rows and as CSV, and byte counts in plain units."""

from __future__ import annotations

import csv
import io
from typing import Any

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


def report_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)

    def row(group: str, name: str, tally: dict[str, Any]) -> None:
        writer.writerow(
            [
                group,
                name,
                tally["received"],
                tally["automatic"],
                tally["approved"],
                tally["denied"],
                tally["expired"],
                tally["rejected"],
                f"{tally['live_minutes']:.1f}",
                tally["bytes_uploaded"],
            ]
        )

    for name, tally in sorted(report["by_agency"].items()):
        row("agency", name, tally)
    for name, tally in sorted(report["by_camera"].items()):
        row("camera", name, tally)
    row("all", "all", report["total"])
    return out.getvalue()


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{count} bytes"
