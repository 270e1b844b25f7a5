"""What the owner's page says about times, footage and trouble: on the site's wall clock, in
minutes, hours or days, naming the camera, with the check's own advice."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.owner_page.words import Clock, attention, span
from agent.units import site_zone

DENVER = Clock(site_zone("America/Denver"))


def test_times_are_on_the_site_wall_clock() -> None:
    moment = datetime(2026, 12, 6, 21, 35, 52, tzinfo=UTC)
    assert DENVER.when(moment) == "Sun 06 Dec 2026, 14:35"
    assert DENVER.when(moment.isoformat()) == "Sun 06 Dec 2026, 14:35"
    assert DENVER.when(None) == "" and DENVER.when("not a time") == ""
    # A clip is often seconds long: its window is told to the second.
    window = DENVER.window("2026-12-06T21:35:52Z", "2026-12-06T21:36:07Z")
    assert window == "Sun 06 Dec 2026, 14:35:52 to 14:36:07"
    # Across midnight on the site's clock, the end says its day.
    assert DENVER.window("2026-12-07T06:50:00Z", "2026-12-07T07:10:00Z").endswith(
        "to Mon 07 Dec, 00:10:00"
    )


def test_footage_is_said_in_minutes_hours_or_days() -> None:
    assert span(0.0) == "less than a minute"
    assert span(1 / 1440) == "1 minute"
    assert span(0.5) == "12 hours"
    assert span(2.5) == "2.5 days"


def _recorder(camera: str, state: str = "recording", days: float = 3.0) -> dict[str, Any]:
    return {
        "camera": camera,
        "state": state,
        "since": "2026-12-06T21:00:00Z",
        "footage_days": days,
        "bar_days": 2.0,
        "meets_bar": days >= 2.0,
    }


def test_what_needs_the_owner() -> None:
    status: dict[str, Any] = {
        "cameras": [{"camera": "back", "name": "Back alley"}],
        "recorders": [
            _recorder("front", days=0.01),
            _recorder("back"),
            _recorder("side", "offline"),
        ],
        "checks": {
            "back": {"verdict": "fail", "advice": ["Its firmware has a known flaw. Update it."]},
            "front": {"verdict": "warn", "advice": ["A warning only."]},
        },
        "disk": {"readable": True, "free": 3_000_000_000, "filling": True},
        "link": {"state": "connecting"},
    }
    notes = attention(status, DENVER)
    assert notes == [
        "Camera front holds 14 minutes of footage so far; the program asks for 2 days. It fills "
        "up as it records.",
        "Camera Back alley failed its compatibility check: Its firmware has a known flaw. What "
        "to do is on the Cameras page.",
        "Camera side is offline since Sun 06 Dec 2026, 14:00.",
        "The disk that holds the footage is nearly full (3.0 GB free), and not only with footage: "
        "old footage will be deleted sooner than planned. Free some space on that disk.",
        "The agent cannot reach the RTCC right now; it keeps trying.",
    ]
    calm = {"recorders": [_recorder("front")], "disk": {"readable": True, "filling": False}}
    assert attention(calm, DENVER) == []
