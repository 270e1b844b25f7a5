"""Times, spans and what needs the owner, as the owner's page says them: on the site's wall
clock (`[site] timezone`, by default the machine's zone — the same zone `agent.units` reads
local times in), in hours and days rather than fractions, with the camera's name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from agent.owner_page.activity import human_bytes

RECORDER_WORDS = {
    "starting": "starting",
    "connecting": "connecting",
    "recording": "recording",
    "reconnecting": "reconnecting",
    "offline": "offline",
    "disk_full": "stopped: the disk is full",
    "store_error": "stopped: the disk refuses writes",
    "failed": "failing",
    "stopped": "stopped",
}


@dataclass(frozen=True)
class Clock:
    zone: tzinfo

    def _local(self, moment: datetime | str) -> datetime:
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        return moment.astimezone(self.zone)

    def when(self, moment: datetime | str | None) -> str:
        """`Sun 06 Dec 2026, 14:35`; empty for no time (and for text that is not one)."""
        if moment is None:
            return ""
        try:
            return self._local(moment).strftime("%a %d %b %Y, %H:%M")
        except ValueError:
            return ""

    def window(self, start: datetime | str, end: datetime | str) -> str:
        """A footage window to the second (a clip is often a few seconds long); the end's date
        only when it is another day."""
        try:
            first, last = self._local(start), self._local(end)
        except ValueError:
            return ""
        begins = first.strftime("%a %d %b %Y, %H:%M:%S")
        ends = last.strftime("%H:%M:%S" if last.date() == first.date() else "%a %d %b, %H:%M:%S")
        return f"{begins} to {ends}"


def _first_sentence(text: str) -> str:
    """The check's reason without its details (the Cameras page shows them all)."""
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def span(days: float) -> str:
    """How much footage, in the unit an owner would say it: minutes, hours, then days."""
    minutes = days * 24 * 60
    if minutes < 1:
        return "less than a minute"
    if minutes < 90:
        whole = round(minutes)
        return f"{whole} minute{'s' if whole != 1 else ''}"
    if minutes < 48 * 60:
        hours = round(minutes / 60)
        return f"{hours} hours"
    return f"{days:.1f} days"


def attention(status: dict[str, Any], clock: Clock) -> list[str]:
    """What needs the owner, in plain words: cameras not recording, footage short of the
    program's bar, failed compatibility checks, a disk running out, the RTCC out of reach."""
    names = {row["camera"]: row.get("name") or row["camera"] for row in status.get("cameras") or []}
    checks: dict[str, Any] = status.get("checks") or {}
    notes: list[str] = []
    for row in status.get("recorders") or []:
        camera = row["camera"]
        name = names.get(camera, camera)
        state = row["state"]
        if state != "recording":
            words = RECORDER_WORDS.get(state, state)
            since = f" since {clock.when(row['since'])}" if row.get("since") else ""
            notes.append(f"Camera {name} is {words}{since}.")
        elif not row["meets_bar"]:
            notes.append(
                f"Camera {name} holds {span(row['footage_days'])} of footage so far; the "
                f"program asks for {row['bar_days']:.0f} days. It fills up as it records."
            )
        check = checks.get(camera) or {}
        if check.get("verdict") == "fail":
            advice = check.get("advice") or []
            why = f": {_first_sentence(advice[0])}" if advice else ""
            notes.append(
                f"Camera {name} failed its compatibility check{why} What to do is on the "
                "Cameras page."
            )
    disk = status.get("disk") or {}
    if disk.get("readable") is False:
        notes.append(
            "The disk that holds the footage cannot be read. Check that it is plugged in; "
            "`sudo rtcc-edge doctor` says more."
        )
    elif disk.get("filling"):
        notes.append(
            f"The disk that holds the footage is nearly full ({human_bytes(disk['free'])} free), "
            "and not only with footage: old footage will be deleted sooner than planned. Free "
            "some space on that disk."
        )
    link = status.get("link") or {}
    if link.get("state") == "connecting":
        notes.append("The agent cannot reach the RTCC right now; it keeps trying.")
    return notes
